package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/cgtest"
	"golang.org/x/sys/unix"
)

const busybox = "/bin/busybox"

// host is where this machine's cgroup hierarchies are mounted.
type host struct {
	// v1 maps each mounted v1 hierarchy's mount point to its options;
	// freezer is the freezer hierarchy's mount point, "" without one.
	v1      []string
	freezer string
	// cg2 is the cgroup2 mount point (/sys/fs/cgroup/unified on a hybrid
	// host). The inner process moves it to /sys/fs/cgroup for the v2
	// scenarios (see useCg2At).
	cg2 string
}

type mountEntry struct {
	root, mountPoint, fsType string
	superOptions             []string
}

// readMountinfo reads /proc/self/mountinfo with
// github.com/moby/sys/mountinfo (as package mount does).
func readMountinfo() ([]mountEntry, error) {
	entries, err := cgtest.ReadMountinfo("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("/proc/self/mountinfo: %w", err)
	}
	out := make([]mountEntry, len(entries))
	for i, e := range entries {
		out[i] = mountEntry{root: e.Root, mountPoint: e.MountPoint, fsType: e.FSType, superOptions: e.SuperOptions}
	}
	return out, nil
}

func discoverHost() (*host, error) {
	mounts, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	h := &host{}
	for _, m := range mounts {
		if m.root != "/" {
			continue
		}
		switch m.fsType {
		case "cgroup":
			h.v1 = append(h.v1, m.mountPoint)
			if slices.Contains(m.superOptions, "freezer") && h.freezer == "" {
				h.freezer = m.mountPoint
			}
		case "cgroup2":
			if h.cg2 == "" || m.mountPoint == "/sys/fs/cgroup" || m.mountPoint == "/sys/fs/cgroup/unified" {
				h.cg2 = m.mountPoint
			}
		}
	}
	if h.cg2 == "" {
		return nil, errors.New("no cgroup2 hierarchy is mounted; the v2 scenarios need one")
	}
	ns, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		return nil, err
	}
	if ns != "cgroup:[4026531835]" {
		return nil, fmt.Errorf("the bench must run in the initial cgroup namespace (it is in %s)", ns)
	}
	return h, nil
}

// hierarchies lists every cgroup mount the host has, cgroup2 last.
func (h *host) hierarchies() []string {
	return append(slices.Clone(h.v1), h.cg2)
}

// bareDirs lists cgroups of earlier runs, in every hierarchy.
func (h *host) bareDirs() []string {
	var out []string
	for _, m := range h.hierarchies() {
		found, _ := filepath.Glob(filepath.Join(m, "cgfreeze-bench-*"))
		out = append(out, found...)
	}
	return out
}

// runDirs lists this run's top-level cgroups.
func (h *host) runDirs(id string) []string {
	var out []string
	for _, m := range h.hierarchies() {
		d := filepath.Join(m, id)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// cg2Options returns the cgroup2 hierarchy's superblock options.
func (h *host) cg2Options() ([]string, error) { return cgtest.Cg2Options(h.cg2) }

func sameOptions(a, b []string) bool { return cgtest.SameOptions(a, b) }

// setCg2Options applies superblock options to the whole cgroup2 hierarchy,
// for the whole machine (cgtest.SetCg2Options).
func (h *host) setCg2Options(opts []string) error { return cgtest.SetCg2Options(h.cg2, opts) }

// removeRunCgroups thaws, empties and removes every cgroup of the run id,
// in every hierarchy: only cgroups below <hierarchy>/<id>, which this run
// created.
func removeRunCgroups(ctx context.Context, h *host, id string) error {
	if !strings.HasPrefix(id, "cgfreeze-bench-") || strings.Contains(id, "/") {
		return fmt.Errorf("refusing to remove %q: not a bench run's cgroup", id)
	}
	var errs []error
	dirs := h.runDirs(id)
	for _, d := range dirs {
		errs = append(errs, thawTree(d))
	}
	for _, d := range dirs {
		errs = append(errs, killTree(ctx, d))
	}
	for _, d := range dirs {
		errs = append(errs, removeTree(ctx, d))
	}
	return errors.Join(errs...)
}

// walk lists dir and every cgroup below it, parents first.
func walk(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed meanwhile
			}
			return err
		}
		if d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func thawTree(dir string) error {
	all, err := walk(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, cg := range all {
		for file, value := range map[string]string{"freezer.state": "THAWED", "cgroup.freeze": "0"} {
			if _, err := os.Stat(filepath.Join(cg, file)); err == nil {
				_ = os.WriteFile(filepath.Join(cg, file), []byte(value), 0)
			}
		}
	}
	return nil
}

// killTree kills every process in dir's tree and waits until it is empty.
func killTree(ctx context.Context, dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		all, err := walk(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var left []int
		for _, cg := range all {
			pids, _ := readPIDs(filepath.Join(cg, "cgroup.procs"))
			left = append(left, pids...)
		}
		if len(left) == 0 {
			return nil
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		} else {
			for _, pid := range left {
				if pid > 1 {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %d processes still there", dir, len(left))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeTree removes dir and every cgroup below it, children first.
func removeTree(ctx context.Context, dir string) error {
	all, err := walk(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		deadline := time.Now().Add(3 * time.Second)
		for {
			err := unix.Rmdir(all[i])
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("rmdir %s: %w", all[i], err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// readPIDs reads a cgroup.procs file.
func readPIDs(file string) ([]int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parsePIDs(b)
}

func parsePIDs(b []byte) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("cgroup.procs: %q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// procCgroup returns pid's cgroup in the v1 freezer hierarchy (version 1)
// or in cgroup2 (version 2), as the initial cgroup namespace sees it.
func procCgroup(pid, version int) (string, error) { return cgtest.ProcCgroup(pid, version) }

// children lists the children of pid (every thread's).
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// readFile returns a file's content without surrounding white space.
func readFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	return strings.TrimSpace(string(b)), err
}

// eventsFrozen reads the frozen key of a v2 cgroup.events.
func eventsFrozen(dir string) (bool, error) {
	s, err := readFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	return frozenKey([]byte(s))
}

func frozenKey(b []byte) (bool, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && k == "frozen" {
			return v == "1", nil
		}
	}
	return false, fmt.Errorf("cgroup.events has no frozen key: %q", b)
}

// sleepCtx sleeps d, or less when ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
