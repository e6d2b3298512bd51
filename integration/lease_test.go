package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLeaseStdin: with --lease stdin the hold ends when the caller closes
// cgfreeze's stdin (or dies, which closes it too): thawed, reason "stdin".
func TestLeaseStdin(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r := h.startCgfreezeStdin("cgfreeze --lease stdin", tg.argv("", "--lease", "stdin"), pr)
			_ = pr.Close()
			r.waitEvent("frozen")
			tg.requireFrozen("held on a lease")
			h.requireStill("held on a lease", tg.cg, stillFor, tg.w)
			if _, err := pw.WriteString("input is read and ignored\n"); err != nil {
				t.Fatal(err)
			}
			h.requireStill("after input on stdin", tg.cg, stillFor/2, tg.w)
			closed := time.Now()
			_ = pw.Close()
			e := r.waitEvent("thawed")
			if e.Reason != "stdin" {
				t.Errorf("thawed event %s: want reason stdin", e.raw)
			}
			t.Logf("thawed %v after stdin closed", time.Since(closed).Round(time.Millisecond))
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0: %s", code, r.describe())
			}
			h.requireProgress("after the lease ended", tg.w)
			h.requireSameCgroups("after the lease ended", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// parentScript runs "$@" as a child (not exec), so that the shell stays
// cgfreeze's parent until it is killed.
const parentScript = `"$@"; exit $?`

// TestLeaseParent: with --lease parent the hold ends when cgfreeze's parent
// process dies: thawed, reason "parent".
func TestLeaseParent(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			argv := insertBefore(t, tg.argv("", "--lease", "parent"), busybox, "sh", "-c", parentScript, "parent")
			r := h.startCgfreeze("cgfreeze --lease parent under a shell", argv)
			r.waitEvent("frozen")
			tg.requireFrozen("held on a lease")
			h.requireStill("held on a lease", tg.cg, stillFor, tg.w)
			holder := r.cgfreezePid()
			parent := ppid(t, holder)
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", parent)); !strings.Contains(string(cmd), parentScript) {
				t.Fatalf("cgfreeze's parent (PID %d) is %q, not the test's shell", parent, cmd)
			}
			killed := time.Now()
			if err := syscall.Kill(parent, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e := r.waitEvent("thawed")
			if e.Reason != "parent" {
				t.Errorf("thawed event %s: want reason parent", e.raw)
			}
			t.Logf("thawed %v after the parent died", time.Since(killed).Round(time.Millisecond))
			h.waitGone("cgfreeze", holder)
			h.requireProgress("after the lease ended", tg.w)
			h.requireSameCgroups("after the lease ended", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestLeaseParentInvisible: a parent outside cgfreeze's PID namespace (the
// case of an ephemeral container's first process) cannot be watched:
// --lease parent is refused before anything changes.
func TestLeaseParentInvisible(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindSubtree, targetOpts{})
	before := h.snapshot(tg.cg)
	r := tg.start("", "--lease", "parent")
	e := r.requireRefusal(1)
	if !strings.Contains(e.Error, "--lease stdin") {
		t.Errorf("error %q does not suggest --lease stdin", e.Error)
	}
	h.requireProgress("after the refusal", tg.w)
	h.requireSameCgroups("after the refusal", before, tg.w.pid)
	h.checkLeftovers()
}

// ppid returns the parent of process pid.
func ppid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatalf("/proc/%d/stat: %q: %v", pid, s, err)
	}
	return n
}
