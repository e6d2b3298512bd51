package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Deadlines of the harness's waits.
const (
	startDeadline    = 5 * time.Second  // a workload counts, an agent's cgfreeze process appears
	eventDeadline    = 20 * time.Second // a frozen or thawed event (cgfreeze's own --timeout is 10 s)
	exitDeadline     = 20 * time.Second // cgfreeze exits after its last event
	progressDeadline = 3 * time.Second  // a thawed workload counts again
	stillFor         = 300 * time.Millisecond
	cleanupDeadline  = 5 * time.Second
)

// harness is one test's cgroups, workloads and cgfreeze runs; its cleanup
// kills and removes all of them.
type harness struct {
	t          testing.TB
	dir        string
	roots      []*cgroup // the top-level cgroups the test made
	workloads  []*workload
	runs       []*run
	cg2Options []string // what the cgroup2 superblock options must read at the end
	// foreign are cgroups named like cgfreeze's that the test made for
	// the workload (a workload's own "cgfreeze" child), not leftovers.
	foreign map[string]bool
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	opts, err := cg2SuperOptions()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: t.TempDir(), cg2Options: opts, foreign: map[string]bool{}}
	t.Cleanup(h.cleanup)
	return h
}

// checkLeftovers fails the test on anything a cgfreeze left behind: a
// cgroup named cgfreeze, a frozen cgroup, a mark, a mount, a process, or
// changed cgroup2 options.
func (h *harness) checkLeftovers() {
	h.t.Helper()
	for _, root := range h.roots {
		all, err := root.walk()
		if errors.Is(err, fs.ErrNotExist) {
			continue // the test removed it
		}
		if err != nil {
			h.t.Errorf("leftovers: %v", err)
			continue
		}
		for _, cg := range all {
			if base := filepath.Base(cg.dir); isOwnChildName(base) || base == "cgfreeze" && !h.foreign[cg.dir] {
				h.t.Errorf("leftovers: cgroup %s is still there", cg)
			}
			if cg.version == 1 {
				if st, err := cg.read("freezer.state"); err != nil || st != "THAWED" {
					h.t.Errorf("leftovers: %s reads %q (%v), not THAWED", cg.file("freezer.state"), st, err)
				}
			} else {
				if v, err := cg.read("cgroup.freeze"); err != nil || v != "0" {
					h.t.Errorf("leftovers: %s reads %q (%v), not 0", cg.file("cgroup.freeze"), v, err)
				}
				if v, err := cg.frozen(); err != nil || v != "0" {
					h.t.Errorf("leftovers: %s says frozen %q (%v)", cg.file("cgroup.events"), v, err)
				}
			}
			if v, err := getxattr(cg.dir, "trusted.cgfreeze"); err == nil {
				h.t.Errorf("leftovers: %s still carries the mark trusted.cgfreeze=%s", cg, v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err != nil {
		h.t.Errorf("leftovers: %v", err)
	} else {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "cgfreeze") {
				h.t.Errorf("leftovers: a mount in /proc/self/mountinfo: %s", line)
			}
		}
	}
	if pids := cgfreezeProcesses(); len(pids) > 0 {
		h.t.Errorf("leftovers: cgfreeze processes still run: %v", pids)
	}
	if now, err := cg2SuperOptions(); err != nil || !sameOptions(now, h.cg2Options) {
		h.t.Errorf("leftovers: the cgroup2 hierarchy's options read %q (%v), not %q", strings.Join(now, ","), err, strings.Join(h.cg2Options, ","))
	}
}

func getxattr(file, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(file, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func (h *harness) cleanup() {
	t := h.t
	// cgfreeze first, so that it does not fight the thaw below. Every
	// process that runs this suite's binary is one of this suite's.
	for _, r := range h.runs {
		if r.cmd.Process != nil && r.running() {
			_ = r.cmd.Process.Kill()
		}
	}
	for _, pid := range cgfreezeProcesses() {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	for _, w := range h.workloads {
		if w.alive() {
			_ = w.cmd.Process.Kill()
		}
	}
	// Thaw everything (v1 frozen tasks cannot die before), then kill
	// whatever runs in the test's cgroups.
	for _, root := range h.roots {
		if err := thawTree(root); err != nil {
			t.Errorf("cleanup: thaw %s: %v", root, err)
		}
	}
	for _, root := range h.roots {
		if err := killTree(root); err != nil {
			t.Errorf("cleanup: kill the processes of %s: %v", root, err)
		}
	}
	deadline := time.Now().Add(cleanupDeadline)
	exited := func(ch <-chan struct{}) bool {
		timer := time.NewTimer(max(time.Until(deadline), time.Millisecond))
		defer timer.Stop()
		select {
		case <-ch:
			return true
		case <-timer.C:
			return false
		}
	}
	for _, r := range h.runs {
		if !exited(r.exited) {
			t.Errorf("cleanup: %s (PID %d) does not exit", r.desc, r.cmd.Process.Pid)
		}
	}
	for _, w := range h.workloads {
		if !exited(w.exited) {
			t.Errorf("cleanup: %s (PID %d) does not exit", w.name, w.cmd.Process.Pid)
		}
	}
	for i := len(h.roots) - 1; i >= 0; i-- {
		if err := removeTree(h.roots[i]); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

func thawTree(root *cgroup) error {
	all, err := root.walk()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, cg := range all {
		if root.version == 1 {
			errs = append(errs, ignoreGone(cg.write("freezer.state", "THAWED")))
		} else {
			errs = append(errs, ignoreGone(cg.write("cgroup.freeze", "0")))
		}
	}
	return errors.Join(errs...)
}

func ignoreGone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

// killTree kills every process in root's tree and waits until it is empty.
func killTree(root *cgroup) error {
	deadline := time.Now().Add(cleanupDeadline)
	for {
		procs, err := root.treeProcs()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var left []int
		for _, pids := range procs {
			left = append(left, pids...)
		}
		if len(left) == 0 {
			return nil
		}
		if root.version == 2 {
			_ = root.write("cgroup.kill", "1")
		} else {
			for _, pid := range left {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still there after %v: %v", cleanupDeadline, procs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeTree removes root and every cgroup below it, children first.
func removeTree(root *cgroup) error {
	all, err := root.walk()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0; i-- {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := unix.Rmdir(all[i].dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				procs, _ := all[i].read("cgroup.procs")
				return fmt.Errorf("rmdir %s: %w (cgroup.procs: %q)", all[i], err, procs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}
