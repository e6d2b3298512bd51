package integration

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
)

// Exit codes of docs/usage.md.
const (
	exitNoTarget      = 3
	exitUnsafeTarget  = 4
	exitAlreadyFrozen = 8
)

// TestRefuseMissingProcess: --pid of a process that cannot exist (PIDs are
// below pid_max) exits 3.
func TestRefuseMissingProcess(t *testing.T) {
	for _, version := range []string{"", "1", "2"} {
		t.Run("cgroup-version="+version, func(t *testing.T) {
			h := newHarness(t)
			argv := []string{binPath, "--pid", strconv.Itoa(pidMax), "-o", "json"}
			if version != "" {
				argv = append(argv, "--cgroup-version", version)
			}
			r := h.startCgfreeze("cgfreeze --pid <pid_max>", argv)
			e := r.requireRefusal(exitNoTarget)
			if !strings.Contains(e.Error, strconv.Itoa(pidMax)) {
				t.Errorf("error event %s does not name the PID %d", e.raw, pidMax)
			}
			h.checkLeftovers()
		})
	}
}

// TestRefuseTargetHoldingCgfreeze: cgfreeze started inside the target cgroup
// must refuse it (exit 4), or it would freeze itself.
func TestRefuseTargetHoldingCgfreeze(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			join := `echo 0 > "$1" || { echo "cannot join $1" >&2; exit 97; }; shift; exec "$@"`
			var argv []string
			if k == kindSubtree {
				// `kubectl exec` into the target container: its cgroup,
				// its cgroup, PID and mount namespaces.
				argv = []string{busybox, "sh", "-c", join, "inside", tg.cg.file("cgroup.procs"),
					nsenterPath, "--target", strconv.Itoa(tg.w.pid), "--pid", "--cgroup", "--mount", "--",
					binPath, "--cgroup-version", "2", "-o", "json"}
			} else {
				argv = append([]string{busybox, "sh", "-c", join, "inside", tg.cg.file("cgroup.procs")}, tg.argv("")...)
			}
			r := h.startCgfreeze("cgfreeze inside the target", argv)
			e := r.requireRefusal(exitUnsafeTarget)
			if !strings.Contains(e.Error, "itself") {
				t.Logf("note: error %q does not say that the cgroup holds cgfreeze itself", e.Error)
			}
			h.requireProgress("after the refusal", tg.w)
			h.requireSameCgroups("after the refusal", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// freezeByHand freezes the target the way another tool (runc pause) does.
func (tg *target) freezeByHand() {
	h := tg.h
	h.t.Helper()
	var err error
	if tg.kind == kindV1 {
		err = tg.cg.write("freezer.state", "FROZEN")
	} else {
		err = tg.cg.write("cgroup.freeze", "1")
	}
	if err != nil {
		h.t.Fatalf("freeze %s by hand: %v", tg.cg, err)
	}
	tg.waitState("frozen by hand", true)
}

func (tg *target) thawByHand() {
	h := tg.h
	h.t.Helper()
	var err error
	if tg.kind == kindV1 {
		err = tg.cg.write("freezer.state", "THAWED")
	} else {
		err = tg.cg.write("cgroup.freeze", "0")
	}
	if err != nil {
		h.t.Fatalf("thaw %s by hand: %v", tg.cg, err)
	}
	tg.waitState("thawed by hand", false)
}

// waitState waits until the kernel reports the target cgroup (frozen by
// hand) frozen or thawed.
func (tg *target) waitState(what string, frozen bool) {
	h := tg.h
	h.t.Helper()
	deadline := time.Now().Add(startDeadline)
	for {
		var got string
		var err error
		want := "0"
		if tg.kind == kindV1 {
			got, err = tg.cg.read("freezer.state")
			want = "THAWED"
			if frozen {
				want = "FROZEN"
			}
		} else {
			got, err = tg.cg.frozen()
			if frozen {
				want = "1"
			}
		}
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: %s reads %q (%v), not %q after %v", what, tg.cg, got, err, want, startDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRefuseFrozenBySomeoneElse: a target frozen by another tool is refused
// (exit 8) and left frozen; `cgfreeze thaw` leaves it alone too; `status`
// says frozen_by other.
func TestRefuseFrozenBySomeoneElse(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			tg.freezeByHand()

			tg.start("").requireRefusal(exitAlreadyFrozen)
			tg.waitState("after the refused freeze", true)
			h.requireStill("after the refused freeze", tg.cg, stillFor/2, tg.w)

			tg.start("thaw").requireRefusal(exitAlreadyFrozen)
			tg.waitState("after the refused thaw", true)
			h.requireStill("after the refused thaw", tg.cg, stillFor/2, tg.w)

			r := tg.start("status")
			e := r.waitEvent("status")
			if code := r.wait(); code != 0 {
				t.Errorf("status exit code %d: %s", code, r.describe())
			}
			if e.State != "frozen" || e.FrozenBy != "other" || e.Holder != 0 {
				t.Errorf("status event %s: want state frozen, frozen_by other, no holder", e.raw)
			}
			if code := tg.statusCode(); code != contract.StatusFrozenOther {
				t.Errorf("status --exit-code of another tool's freeze: exit %d, want %d", code, contract.StatusFrozenOther)
			}

			if k == kindV1 {
				if v, err := tg.cg.read("freezer.self_freezing"); err != nil || v != "1" {
					t.Errorf("%s reads %q (%v), not 1", tg.cg.file("freezer.self_freezing"), v, err)
				}
			} else if v, err := tg.cg.read("cgroup.freeze"); err != nil || v != "1" {
				t.Errorf("%s reads %q (%v), not 1: cgfreeze changed another tool's freeze", tg.cg.file("cgroup.freeze"), v, err)
			}
			tg.thawByHand()
			h.requireProgress("after the thaw by hand", tg.w)
			h.requireSameCgroups("after the thaw by hand", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestThawNotFrozen: `cgfreeze thaw` on a target that is not frozen exits 0
// with nothing_to_thaw and changes nothing.
func TestThawNotFrozen(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			before := h.snapshot(tg.cg)
			r := tg.start("thaw")
			e := r.nextEvent()
			if code := r.wait(); code != 0 {
				t.Errorf("thaw exit code %d, want 0: %s", code, r.describe())
			}
			if e.Event != "nothing_to_thaw" || e.State != "thawed" {
				t.Errorf("thaw of a target that is not frozen: event %s, want nothing_to_thaw with state thawed: %s", e.raw, r.describe())
			}
			tg.requireBase(e)
			if code := tg.statusCode(); code != contract.StatusThawed {
				t.Errorf("status --exit-code of a thawed target: exit %d, want %d", code, contract.StatusThawed)
			}
			h.requireProgress("after the thaw", tg.w)
			h.requireSameCgroups("after the thaw", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestSecondFreezeWhileHeld: while a cgfreeze holds the target, a second
// freeze is refused (exit 8), `cgfreeze thaw` leaves the freeze alone (exit
// 8), and the first one still thaws normally.
func TestSecondFreezeWhileHeld(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			tg.cycle("held", cycleOpts{sig: syscall.SIGTERM, still: stillFor / 2, whileFrozen: func(*run) {
				e := tg.start("").requireRefusal(exitAlreadyFrozen)
				if !strings.Contains(e.Error, "running cgfreeze") {
					t.Logf("note: error %q does not say that a running cgfreeze holds it", e.Error)
				}
				tg.requireFrozen("after the refused second freeze")
				h.requireStill("after the refused second freeze", tg.cg, stillFor/2, tg.w)
				tg.start("thaw").requireRefusal(exitAlreadyFrozen)
				tg.requireFrozen("after the refused thaw")
				h.requireStill("after the refused thaw", tg.cg, stillFor/2, tg.w)
			}})
		})
	}
}

// TestThawLeftover: a SIGKILLed cgfreeze leaves the target frozen (there is
// no watchdog yet); a new freeze is refused (exit 8); `cgfreeze thaw` finds
// the mark, undoes the freeze (recovered, with the dead holder's PID) and is
// idempotent.
func TestThawLeftover(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			before := h.snapshot(tg.cg)
			holder := tg.leaveFrozen()
			h.requireStill("after SIGKILL", tg.cg, stillFor/2, tg.w)
			tg.requireStatus("status of the leftover", "frozen", "cgfreeze", holder)
			if code := tg.statusCode(); code != contract.StatusLeftover {
				t.Errorf("status --exit-code of a leftover: exit %d, want %d", code, contract.StatusLeftover)
			}

			r := tg.start("thaw")
			e := r.nextEvent()
			if code := r.wait(); code != 0 {
				t.Errorf("thaw exit code %d, want 0: %s", code, r.describe())
			}
			if e.Event != "recovered" || e.Holder != holder || e.State != "thawed" {
				t.Errorf("thaw of a leftover: event %s, want recovered with holder %d, state thawed: %s", e.raw, holder, r.describe())
			}
			tg.requireBase(e)
			h.requireProgress("after cgfreeze thaw", tg.w)
			h.requireSameCgroups("after cgfreeze thaw", before, tg.w.pid)
			h.checkLeftovers()

			r = tg.start("thaw")
			r.waitEvent("nothing_to_thaw")
			if code := r.wait(); code != 0 {
				t.Errorf("second thaw exit code %d, want 0: %s", code, r.describe())
			}
			h.checkLeftovers()

			// A new freeze that meets a leftover recovers it first and
			// says so.
			holder = tg.leaveFrozen()
			r = tg.start("", "--duration", "300ms")
			e = r.waitEvent("recovered")
			if e.Reason != "leftover" || e.Holder != holder {
				t.Errorf("freeze over a leftover: event %s, want recovered, reason leftover, holder %d", e.raw, holder)
			}
			r.waitEvent("frozen")
			tg.requireFrozen("frozen over a recovered leftover")
			r.waitEvent("thawed")
			if code := r.wait(); code != 0 {
				t.Errorf("freeze over a leftover: exit code %d, want 0: %s", code, r.describe())
			}
			h.requireProgress("after the freeze over a leftover", tg.w)
			h.requireSameCgroups("after the freeze over a leftover", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// leaveFrozen makes the leftover that the watchdog cannot prevent: it
// SIGKILLs the supervisor (the watchdog) and the holder, as when a whole
// container is killed at once. It returns the holder's PID as the mark
// records it.
func (tg *target) leaveFrozen() int {
	h := tg.h
	h.t.Helper()
	r := tg.start("")
	r.waitEvent("frozen")
	tg.waitHandedOver(r)
	holder, holderProcess, supervisor := tg.holderPid(r), r.holderProcess(), r.cgfreezePid()
	// Both die at once, by one kill(2) of their process group (the
	// run's, with its wrapper if any): a holder that outlived its
	// supervisor would thaw, as it must when the supervisor alone dies.
	// (Stopping the holder first does not do: the supervisor's death
	// orphans the group, and the kernel sends its stopped members SIGHUP
	// and SIGCONT.)
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	h.waitGone("the killed supervisor", supervisor)
	h.waitGone("the killed holder", holderProcess)
	select {
	case <-r.exited:
	case <-time.After(exitDeadline):
		h.t.Fatalf("cgfreeze does not die of SIGKILL: %s", r.describe())
	}
	tg.requireFrozen("after SIGKILL of the supervisor and the holder")
	return holder
}

// statusCode runs `cgfreeze status --exit-code` and returns its exit code
// (contract.StatusCodes), after its status event.
func (tg *target) statusCode() int {
	tg.h.t.Helper()
	r := tg.start("status", "--exit-code")
	r.waitEvent("status")
	return r.wait()
}
