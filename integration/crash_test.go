package integration

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watchdogLimit is the promise of docs/design.md: a holder killed with
// SIGKILL has its target thawed and restored within a second.
const watchdogLimit = time.Second

// restored tells whether the kernel reports the target thawed and no
// cgfreeze cgroup is left under it.
func (tg *target) restored() bool {
	all, err := tg.cg.walk()
	if err != nil {
		return false
	}
	for _, cg := range all {
		if isOwnChildName(baseName(cg.dir)) {
			return false
		}
		if tg.kind == kindV1 {
			if st, err := cg.read("freezer.state"); err != nil || st != "THAWED" {
				return false
			}
		} else if v, err := cg.frozen(); err != nil || v != "0" {
			return false
		}
	}
	if tg.kind == kindSubtree {
		pids, err := tg.cg.procs()
		return err == nil && slices.Contains(pids, tg.w.pid)
	}
	return true
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

// waitRestored waits until the target is restored and returns how long
// that took from since.
func (tg *target) waitRestored(what string, since time.Time, limit time.Duration) time.Duration {
	h := tg.h
	h.t.Helper()
	for {
		if tg.restored() {
			return time.Since(since)
		}
		if time.Since(since) > limit {
			h.t.Fatalf("%s: the target is not restored %v later:%s", what, limit, h.describeCgroups())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestWatchdog: SIGKILL the holder while it holds; its watchdog thaws the
// target and puts every process back within a second, says so, and exits.
func TestWatchdog(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			before := h.snapshot(tg.cg)
			r := tg.start("")
			r.waitEvent("frozen")
			tg.requireFrozen("frozen")
			// A holder killed before the hand-over: TestFaults'
			// holder:adopt.
			tg.waitHandedOver(r)
			holder, supervisor := tg.holderPid(r), r.cgfreezePid()
			killed := time.Now()
			if err := syscall.Kill(r.holderProcess(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			took := tg.waitRestored("after SIGKILL of the holder", killed, 5*time.Second)
			t.Logf("restored %v after the SIGKILL", took.Round(time.Millisecond))
			if took > watchdogLimit {
				t.Errorf("the watchdog restored the target %v after the SIGKILL, more than %v", took, watchdogLimit)
			}
			e := r.waitEvent("recovered")
			if e.Reason != "watchdog" || e.Holder != holder || e.State != "thawed" {
				t.Errorf("watchdog event %s: want reason watchdog, holder %d, state thawed", e.raw, holder)
			}
			tg.requireBase(e)
			if code := r.wait(); code != exitHolderDied {
				t.Errorf("cgfreeze exit %d after its holder died, want %d: %s", code, exitHolderDied, r.describe())
			}
			h.waitGone("the supervisor", supervisor)
			h.requireProgress("after the watchdog", tg.w)
			h.requireSameCgroups("after the watchdog", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// faultSteps are the steps of internal/faults that a kind passes through,
// in order. Thaw steps are reached after SIGTERM.
func faultSteps(k kind) []string {
	steps := []string{"holder:intent", "supervisor:intent", "freeze:locked", "freeze:marked"}
	if k == kindSubtree {
		steps = []string{"holder:intent", "supervisor:intent", "freeze:locked", "freeze:child-created", "freeze:marked", "freeze:child-frozen",
			"freeze:half-migrated", "freeze:migrated"}
	}
	steps = append(steps, "freeze:written", "freeze:confirmed", "supervisor:handover", "holder:adopt", "hold", "thaw:started", "thaw:written")
	if k == kindSubtree {
		steps = append(steps, "thaw:half-restored", "thaw:restored")
	}
	return append(steps, "thaw:confirmed")
}

// supervisorStep tells whether a fault step is the supervisor's: on the
// fast path (agent.FreezeFirst) the first process freezes, and hands the
// hold over once "frozen" is out; the holder guards it until then.
func supervisorStep(step string) bool {
	return strings.HasPrefix(step, "freeze:") || strings.HasPrefix(step, "supervisor:")
}

// TestFaults: cgfreeze SIGKILLed at every step of a freeze and of a thaw.
// "kill": the process at that step dies alone, and the other restores the
// target: at a step of the holder (holder:*, the hold, the thaw), its
// supervisor, the watchdog, recovers (exit 12; a holder that dies at
// holder:intent may be seen before "frozen", and the freeze is rolled
// back: exit 9); at a step of the supervisor's freeze (freeze:*,
// supervisor:*), the holder, its guard until the hand-over, recovers it
// and the process started dies of the SIGKILL. "killall": both die (a
// container killed at once) and `cgfreeze thaw` restores the target.
// Either way: progress resumes, every process is in its original cgroup,
// nothing is left.
func TestFaults(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		for _, action := range []string{"kill", "killall"} {
			for _, step := range faultSteps(k) {
				t.Run(string(k)+"/"+action+"/"+step, func(t *testing.T) {
					h := newHarness(t)
					tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
					before := h.snapshot(tg.cg)
					t.Setenv("CGFREEZE_FAULT", step+":"+action)
					r := tg.start("")
					if step == "hold" || step[:5] == "thaw:" {
						r.waitEvent("frozen")
						if step != "hold" {
							r.signal(syscall.SIGTERM)
						}
					}
					select {
					case <-r.exited:
					case <-time.After(exitDeadline):
						t.Fatalf("cgfreeze did not die at %s: %s", step, r.describe())
					}
					ws, _ := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
					// nsenter, in front of the subtree kind's cgfreeze,
					// reports the signal as 128+9.
					killed := (ws.Signaled() && ws.Signal() == syscall.SIGKILL) || ws.ExitStatus() == 128+int(syscall.SIGKILL)
					switch {
					case action == "kill" && supervisorStep(step):
						// The supervisor died; its holder recovers.
						if !killed {
							t.Errorf("cgfreeze ended with %v, want death by SIGKILL at %s: %s", r.cmd.ProcessState, step, r.describe())
						}
					case action == "kill" && step == "holder:intent":
						if c := ws.ExitStatus(); c != exitHolderDied && c != exitFreezeFailed {
							t.Errorf("cgfreeze ended with %v, want exit %d or %d after its holder died at %s: %s", r.cmd.ProcessState, exitFreezeFailed, exitHolderDied, step, r.describe())
						}
					case action == "kill":
						// The holder died; its supervisor recovered.
						if ws.ExitStatus() != exitHolderDied {
							t.Errorf("cgfreeze ended with %v, want exit %d after its holder died at %s: %s", r.cmd.ProcessState, exitHolderDied, step, r.describe())
						}
					case !killed:
						t.Errorf("cgfreeze ended with %v, want death by SIGKILL at %s: %s", r.cmd.ProcessState, step, r.describe())
					}
					t.Setenv("CGFREEZE_FAULT", "") // for cgfreeze thaw below
					died := time.Now()
					if action == "killall" {
						for _, pid := range cgfreezeProcesses() {
							h.waitGone("a cgfreeze process after killall", pid)
						}
						rt := tg.start("thaw")
						e := rt.nextEvent()
						if code := rt.wait(); code != 0 || (e.Event != "recovered" && e.Event != "nothing_to_thaw") {
							t.Fatalf("cgfreeze thaw after %s: event %s, exit %d: %s", step, e.raw, code, rt.describe())
						}
					}
					took := tg.waitRestored("after the fault at "+step, died, 5*time.Second)
					t.Logf("restored %v after the holder died", took.Round(100*time.Microsecond))
					if action == "kill" && took > watchdogLimit {
						t.Errorf("the watchdog restored the target %v after the holder died at %s, more than %v", took, step, watchdogLimit)
					}
					for _, pid := range cgfreezeProcesses() {
						h.waitGone("a cgfreeze process", pid)
					}
					h.requireProgress("after the fault at "+step, tg.w)
					h.requireSameCgroups("after the fault at "+step, before, tg.w.pid)
					h.checkLeftovers()
				})
			}
		}
	}
}
