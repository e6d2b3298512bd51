package procs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	// The format is "<hierarchy ID>:<controllers>:<path>" a line: the
	// controllers are empty for cgroup2's "0::" line. (containerd's
	// cgroups parser did the first part; its package builds only on Linux,
	// and this one builds everywhere.)
	c := Cgroups{V1: map[string]string{}, V1Hierarchies: map[string]string{}}
	s := bufio.NewScanner(strings.NewReader(string(data)))
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) < 3 {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry: %q", s.Text())
		}
		for _, sub := range strings.Split(parts[1], ",") {
			if sub == "" {
				c.Unified = parts[2]
			} else {
				c.V1[sub] = parts[2]
			}
		}
	}
	if err := s.Err(); err != nil {
		return Cgroups{}, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if _, err := strconv.Atoi(parts[0]); err != nil {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry %q: hierarchy ID is not a number", line)
		}
		if !strings.HasPrefix(parts[2], "/") {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry %q: path is not absolute", line)
		}
		if parts[1] == "" {
			c.HasUnified = true
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			c.V1Hierarchies[ctrl] = parts[1]
		}
	}
	if len(c.V1) == 0 && !c.HasUnified {
		return Cgroups{}, errors.New("no cgroup entries")
	}
	return c, nil
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
	c, err := ParseCgroups(bytes.NewReader(b))
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
