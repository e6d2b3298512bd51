package integration

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	"golang.org/x/sys/unix"
)

// cgroup is a cgroup the test made, in the v1 freezer hierarchy or in
// cgroup2.
type cgroup struct {
	version int    // 1: v1 freezer; 2: cgroup2
	dir     string // its directory here
	rel     string // its path in the hierarchy, as /proc/PID/cgroup shows it in the initial cgroup namespace
}

func (c *cgroup) String() string { return c.dir }

// ownChild returns the child cgroup that a subtree freeze made under c
// (freezer.ChildPrefix and random digits), or nil when there is none.
func (c *cgroup) ownChild() *cgroup {
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		if e.IsDir() && isOwnChildName(e.Name()) {
			return c.sub(e.Name())
		}
	}
	return nil
}

// isOwnChildName tells whether a cgroup's name is that of the child a
// subtree freeze makes (not the legacy "cgfreeze", which a test may give a
// workload's own cgroup).
func isOwnChildName(name string) bool {
	return strings.HasPrefix(name, freezer.ChildPrefix) && freezer.IsChildName(name)
}

func (c *cgroup) file(name string) string { return filepath.Join(c.dir, name) }

func (c *cgroup) read(name string) (string, error) {
	b, err := os.ReadFile(c.file(name))
	return strings.TrimSpace(string(b)), err
}

func (c *cgroup) write(name, value string) error {
	return os.WriteFile(c.file(name), []byte(value), 0)
}

// frozen returns the "frozen" key of cgroup.events (v2): whether the
// kernel has the cgroup frozen.
func (c *cgroup) frozen() (string, error) {
	s, err := c.read("cgroup.events")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == "frozen" {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no frozen key in %q", c.file("cgroup.events"), s)
}

// setupFrozenWait bounds how long a cgroup that a test froze itself (to
// set up what an older or a dead cgfreeze left) takes to say frozen 1.
const setupFrozenWait = 5 * time.Second

// procs lists the processes in c. A threaded cgroup lists threads only
// (cgroup.threads): their processes are what it holds.
func (c *cgroup) procs() ([]int, error) {
	file := "cgroup.procs"
	s, err := c.read(file)
	if errors.Is(err, unix.EOPNOTSUPP) {
		file = "cgroup.threads"
		s, err = c.read(file)
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", c.file(file), f, err)
		}
		if file == "cgroup.threads" {
			if n = tgid(n); n == 0 {
				continue // exited meanwhile
			}
		}
		if !slices.Contains(pids, n) {
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// tgid returns the process of thread tid, or 0 when it is gone.
func tgid(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

func (c *cgroup) sub(name string) *cgroup {
	return &cgroup{version: c.version, dir: filepath.Join(c.dir, name), rel: pathJoin(c.rel, name)}
}

func pathJoin(a, b string) string {
	if a == "/" {
		return "/" + b
	}
	return a + "/" + b
}

// walk returns c and every cgroup below it, parents before children.
func (c *cgroup) walk() ([]*cgroup, error) {
	out := []*cgroup{c}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		below, err := c.sub(e.Name()).walk()
		if err != nil {
			return nil, err
		}
		out = append(out, below...)
	}
	return out, nil
}

// treeProcs lists every process in c and below, by cgroup.
func (c *cgroup) treeProcs() (map[string][]int, error) {
	all, err := c.walk()
	if err != nil {
		return nil, err
	}
	out := map[string][]int{}
	for _, cg := range all {
		pids, err := cg.procs()
		if err != nil {
			return nil, err
		}
		slices.Sort(pids)
		out[cg.rel] = pids
	}
	return out, nil
}

// newCgroup makes a top-level cgroup named cgfreeze-test-*.
func (h *harness) newCgroup(version int) *cgroup {
	h.t.Helper()
	mnt := cg2Mount
	if version == 1 {
		if v1FreezerMount == "" {
			// The machines this suite runs on have one: its absence is a
			// broken machine, not a reason to test less.
			h.t.Fatal("this machine has no v1 freezer hierarchy mounted")
		}
		mnt = v1FreezerMount
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	name := "cgfreeze-test-" + sanitize(h.t.Name()) + "-" + hex.EncodeToString(rnd[:])
	cg := &cgroup{version: version, dir: filepath.Join(mnt, name), rel: "/" + name}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		h.t.Fatalf("create cgroup: %v", err)
	}
	h.roots = append(h.roots, cg)
	return cg
}

func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum {
			b[i] = '_'
		}
	}
	if len(b) > 60 {
		b = b[len(b)-60:]
	}
	return string(b)
}

// child makes a child cgroup; the cleanup of its top-level cgroup removes it.
func (h *harness) child(c *cgroup, name string) *cgroup {
	h.t.Helper()
	cg := c.sub(name)
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		h.t.Fatalf("create cgroup: %v", err)
	}
	return cg
}
