package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitFreezeFailed and exitThawFailed are of docs/usage.md.
const (
	exitFreezeFailed = 9
	exitThawFailed   = 10
	exitHolderDied   = 12
)

// TestMalformedProcCgroup: a /proc/<pid>/cgroup that cannot be parsed is an
// error (exit 1) that names the file and the line; nothing is started.
func TestMalformedProcCgroup(t *testing.T) {
	for _, content := range []string{"garbage\n", "0::\n", "1:freezer\n", "x:freezer:/a\n", "0::relative\n", ""} {
		for _, cmd := range []string{"freeze", "thaw", "status"} {
			t.Run(fmt.Sprintf("%s/%q", cmd, content), func(t *testing.T) {
				h := newHarness(t)
				proc := filepath.Join(h.dir, "proc")
				if err := os.MkdirAll(filepath.Join(proc, "4242"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(proc, "4242", "cgroup"), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				r := h.startCgfreeze("cgfreeze over a malformed cgroup file", []string{binPath, cmd, "--pid", "4242", "--proc", proc, "-o", "json"})
				e := r.requireRefusal(1)
				bad := "invalid cgroup entry"
				if content == "" {
					bad = "no cgroup entries"
				}
				if !strings.Contains(e.Error, filepath.Join(proc, "4242", "cgroup")) || !strings.Contains(e.Error, bad) {
					t.Errorf("error %q does not name the file and the bad entry", e.Error)
				}
				h.checkLeftovers()
			})
		}
	}
}

// killTarget kills every process of the target's tree, frozen or not.
func (tg *target) killTarget() {
	h := tg.h
	h.t.Helper()
	if tg.kind == kindV1 {
		procs, err := tg.cg.treeProcs()
		if err != nil {
			h.t.Fatal(err)
		}
		for _, pids := range procs {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return
	}
	if err := tg.cg.write("cgroup.kill", "1"); err != nil {
		h.t.Fatal(err)
	}
}

// waitEmpty waits until no process is left in the target's tree.
func (tg *target) waitEmpty(what string) {
	h := tg.h
	h.t.Helper()
	deadline := time.Now().Add(exitDeadline)
	for {
		procs, err := tg.cg.treeProcs()
		n := 0
		for _, pids := range procs {
			n += len(pids)
		}
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: processes left: %v (%v)", what, procs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTargetExitsWhileFrozen: the target's processes are killed while
// frozen (v2 lets a fatal signal through a freeze; v1 delivers it at the
// thaw). The hold still ends cleanly: thawed, exit 0, nothing left.
func TestTargetExitsWhileFrozen(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			r := tg.start("")
			r.waitEvent("frozen")
			tg.killTarget()
			if k != kindV1 {
				tg.waitEmpty("killed while frozen")
			}
			r.signal(syscall.SIGTERM)
			e := r.waitEvent("thawed")
			tg.requireBase(e)
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0: %s", code, r.describe())
			}
			tg.waitEmpty("after the thaw")
			h.checkLeftovers()
		})
	}
}

// TestContainerEndsWhileFrozen: in a container the target is PID 1 of its
// PID namespace, which the agent shares; when it dies the kernel kills
// every process of the namespace, cgfreeze and its watchdog included
// (docs/design.md, guarantees). What is left is the empty, frozen cgfreeze
// child cgroup, which holds no process and is removed with the container's
// cgroup by a recursive removal (runc's and containerd's).
func TestContainerEndsWhileFrozen(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindSubtree, targetOpts{nested: true})
	r := tg.start("")
	r.waitEvent("frozen")
	tg.killTarget()
	tg.waitEmpty("killed while frozen")
	select {
	case <-r.exited:
	case <-time.After(exitDeadline):
		t.Fatalf("cgfreeze outlived its PID namespace: %s", r.describe())
	}
	for _, pid := range cgfreezeProcesses() {
		h.waitGone("a cgfreeze process", pid)
	}
	all, err := tg.cg.walk()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(c *cgroup) bool { return isOwnChildName(filepath.Base(c.dir)) }) {
		t.Errorf("no cgfreeze child left: the test no longer shows what it documents")
	}
	// What the runtime does with a dead container's cgroup: a recursive
	// removal, children first. Every cgroup is empty, so it succeeds.
	for i := len(all) - 1; i >= 0; i-- {
		if pids, err := all[i].procs(); err != nil || len(pids) != 0 {
			t.Errorf("%s holds processes %v (%v) after the container ended", all[i], pids, err)
		}
		if err := os.Remove(all[i].dir); err != nil {
			t.Errorf("remove %s: %v", all[i], err)
		}
	}
	h.checkLeftovers()
}

// TestTargetRemovedWhileFrozen: the target's processes are killed and its
// cgroups removed (the runtime deleted the container) while frozen. The
// hold ends cleanly: thawed, exit 0, nothing of cgfreeze left.
func TestTargetRemovedWhileFrozen(t *testing.T) {
	for _, k := range []kind{kindDirect} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			r := tg.start("")
			r.waitEvent("frozen")
			tg.killTarget()
			tg.waitEmpty("killed while frozen")
			all, err := tg.cg.walk()
			if err != nil {
				t.Fatal(err)
			}
			for i := len(all) - 1; i >= 0; i-- { // children first
				if err := os.Remove(all[i].dir); err != nil {
					t.Fatalf("remove %s: %v", all[i], err)
				}
			}
			r.signal(syscall.SIGTERM)
			r.waitEvent("thawed")
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0: %s", code, r.describe())
			}
			h.checkLeftovers()
		})
	}
}

// TestSignalDuringFreeze: SIGINT while the freeze is under way (held open
// by an injected stall) rolls the freeze back: exit 9, the target runs as
// before, every process in its cgroup.
func TestSignalDuringFreeze(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			before := h.snapshot(tg.cg)
			step, marked := "freeze:marked", func() string { return tg.cg.dir }
			if k == kindSubtree {
				// Half-way: the child is made and frozen, nothing moved.
				step, marked = "freeze:child-frozen", func() string {
					if child := tg.cg.ownChild(); child != nil {
						return child.dir
					}
					return tg.cg.sub("no-child-yet").dir
				}
			}
			t.Setenv("CGFREEZE_FAULT", step+":stall")
			r := tg.start("")
			deadline := time.Now().Add(startDeadline)
			for {
				if _, err := getxattr(marked(), "trusted.cgfreeze"); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the freeze never reached %s: %s", step, r.describe())
				}
				time.Sleep(5 * time.Millisecond)
			}
			r.signal(syscall.SIGINT)
			e := r.requireRefusal(exitFreezeFailed)
			if !strings.Contains(e.Error, "interrupted by interrupt") || !strings.Contains(e.Error, "rolled back") {
				t.Errorf("error %q: want it to say interrupted and rolled back", e.Error)
			}
			h.requireProgress("after the interrupted freeze", tg.w)
			h.requireSameCgroups("after the interrupted freeze", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestThawFailure: a thaw that keeps failing (an injected error) gives up
// after --timeout with exit 10 and a message that says what is left and how
// to recover; the watchdog then takes over and restores the target.
func TestThawFailure(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			before := h.snapshot(tg.cg)
			t.Setenv("CGFREEZE_FAULT", "thaw:written:fail")
			r := tg.start("", "--timeout", "1s")
			r.waitEvent("frozen")
			r.signal(syscall.SIGTERM)
			e := r.waitEvent("error")
			if e.ExitCode == nil || *e.ExitCode != exitThawFailed {
				t.Errorf("error %s: want exit_code %d", e.raw, exitThawFailed)
			}
			for _, want := range []string{"injected fault", "left: the target is", "cgfreeze thaw"} {
				if !strings.Contains(e.Error, want) {
					t.Errorf("error %q does not contain %q", e.Error, want)
				}
			}
			rec := r.waitEvent("recovered")
			if rec.Reason != "watchdog" {
				t.Errorf("after the failed thaw: %s, want recovered by the watchdog", rec.raw)
			}
			<-r.exited
			if code := r.cmd.ProcessState.ExitCode(); code != exitThawFailed {
				t.Errorf("exit code %d, want %d: %s", code, exitThawFailed, r.describe())
			}
			for _, pid := range cgfreezeProcesses() {
				h.waitGone("a cgfreeze process", pid)
			}
			h.requireProgress("after the watchdog", tg.w)
			h.requireSameCgroups("after the watchdog", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}
