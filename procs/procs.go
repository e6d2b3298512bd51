package procs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// Cgroups is what /proc/<pid>/cgroup says about one process.
type Cgroups struct {
	// V1 maps each v1 controller (or "name=<name>" hierarchy) to its path.
	V1 map[string]string
	// V1Hierarchies maps each v1 controller to the full comma-separated set
	// of controllers co-mounted with it, as the kernel lists them.
	V1Hierarchies map[string]string
	// Unified is the path in the cgroup2 hierarchy; HasUnified tells whether
	// a "0::" line was present at all.
	Unified    string
	HasUnified bool
}

// ErrNoProcess reports a PID that has no entry in the proc filesystem.
var ErrNoProcess = errors.New("no such process")

// ParseCgroups parses the content of /proc/<pid>/cgroup.
func ParseCgroups(r io.Reader) (Cgroups, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Cgroups{}, err
	}
	return parseCgroups(string(data))
}

// maxCgroupLine is the longest line parseCgroups takes, as the
// bufio.Scanner it once read with (bufio.MaxScanTokenSize): a longer one
// fails with bufio.ErrTooLong.
const maxCgroupLine = bufio.MaxScanTokenSize - 1

// parseCgroups parses /proc/<pid>/cgroup in one pass over its lines, with
// no copy of a line: it runs three times before a freeze (the target,
// cgfreeze itself, PID 1). The format is "<hierarchy ID>:<controllers>:<path>"
// a line: the controllers are empty for cgroup2's "0::" line. (containerd's
// cgroups parser did the first part; its package builds only on Linux, and
// this one builds everywhere.)
//
// It returns what the two passes it was written as returned, for any
// input (FuzzParseCgroups checks it against them): the first took the
// lines as bufio.Scanner cuts them (a "\r" before a "\n" dropped) and
// failed on a line without three fields; the second took the lines of
// the content without its surrounding white space and failed, only if
// the first did not, on the first line whose ID is not a number or whose
// path is not absolute.
func parseCgroups(data string) (Cgroups, error) {
	c := Cgroups{V1: map[string]string{}, V1Hierarchies: map[string]string{}}
	var checkErr error // the second pass's first failure
	first := true
	for rest := data; rest != ""; first = false {
		line, next, found := strings.Cut(rest, "\n")
		rest = next
		if len(line) > maxCgroupLine {
			return Cgroups{}, bufio.ErrTooLong
		}
		scanned := strings.TrimSuffix(line, "\r")
		_, tail, ok := strings.Cut(scanned, ":")
		ctrls, p, ok2 := strings.Cut(tail, ":")
		if !ok || !ok2 {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry: %q", scanned)
		}
		for sub := range strings.SplitSeq(ctrls, ",") {
			if sub == "" {
				c.Unified = p
			} else {
				c.V1[sub] = p
			}
		}
		if checkErr != nil {
			continue
		}
		// The second pass's view of the line: the content's white space
		// trimmed at its ends, a "\r" kept.
		view := line
		if first {
			view = strings.TrimLeftFunc(view, unicode.IsSpace)
		}
		if last := !found || strings.TrimSpace(rest) == ""; last {
			view = strings.TrimRightFunc(view, unicode.IsSpace)
		}
		vid, vtail, _ := strings.Cut(view, ":")
		vctrls, vp, _ := strings.Cut(vtail, ":")
		switch {
		case !isInt(vid):
			checkErr = fmt.Errorf("invalid cgroup entry %q: hierarchy ID is not a number", view)
		case !strings.HasPrefix(vp, "/"):
			checkErr = fmt.Errorf("invalid cgroup entry %q: path is not absolute", view)
		case vctrls == "":
			c.HasUnified = true
		default:
			for ctrl := range strings.SplitSeq(vctrls, ",") {
				c.V1Hierarchies[ctrl] = vctrls
			}
		}
	}
	if checkErr != nil {
		return Cgroups{}, checkErr
	}
	if len(c.V1) == 0 && !c.HasUnified {
		return Cgroups{}, errors.New("no cgroup entries")
	}
	return c, nil
}

// isInt tells whether strconv.Atoi takes s.
func isInt(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// ReadCgroups reads and parses <procRoot>/<pid>/cgroup. It returns an error
// wrapping ErrNoProcess when the process does not exist.
func ReadCgroups(procRoot string, pid int) (Cgroups, error) {
	path := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	b, err := ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errESRCH) {
			return Cgroups{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return Cgroups{}, err
	}
	c, err := parseCgroups(string(b))
	if err != nil {
		if errors.Is(err, errESRCH) {
			return Cgroups{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return Cgroups{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParsePIDs parses a cgroup.procs (or tasks) file: one decimal PID a line.
func ParsePIDs(r io.Reader) ([]int, error) {
	var pids []int
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" {
			continue
		}
		pid, err := strconv.Atoi(line)
		if err != nil || pid < 0 {
			return nil, fmt.Errorf("invalid PID %q", line)
		}
		pids = append(pids, pid)
	}
	return pids, s.Err()
}

// IsAncestor tells whether cgroup path a is b or one of b's ancestors. Both
// paths are cgroup paths as /proc/<pid>/cgroup prints them, read in the same
// cgroup namespace.
func IsAncestor(a, b string) bool {
	// Clean would turn "/../x" into "/x": a path outside the namespace
	// is below no path inside it.
	if Outside(a) || Outside(b) {
		return false
	}
	a, b = filepath.Clean(a), filepath.Clean(b)
	if a == "/" {
		return true
	}
	return a == b || strings.HasPrefix(b, a+"/")
}

// Outside tells whether a cgroup path lies outside the reader's cgroup
// namespace: the kernel prints such paths relative to the namespace root,
// starting with "/..".
func Outside(path string) bool {
	return path == "/.." || strings.HasPrefix(path, "/../")
}

// ListPIDs lists the processes that procRoot shows, in directory order:
// one read of the directory, nothing per process.
func ListPIDs(procRoot string) ([]int, error) {
	f, err := os.Open(procRoot)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
