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

// killAgentWhole kills an agent container's supervisor and holder at once,
// as when the runtime or the node kills the whole container: the holder is
// stopped first, so that it can neither restore the target nor be reaped by
// its supervisor, then the supervisor is killed, which reparents the holder
// to the PID namespace's init (the frozen target), then the holder. It
// returns the processes left as zombies of the target's init, which it
// cannot reap while frozen.
func (rt *ociRuntime) killAgentWhole(r *run, c *container) []int {
	h := rt.h
	h.t.Helper()
	supervisor, holder := r.cgfreezePid(), r.holderProcess()
	for _, step := range []struct {
		pid int
		sig syscall.Signal
	}{{holder, syscall.SIGSTOP}, {supervisor, syscall.SIGKILL}, {holder, syscall.SIGKILL}} {
		if err := syscall.Kill(step.pid, step.sig); err != nil {
			h.t.Fatalf("kill(%d, %v): %v", step.pid, step.sig, err)
		}
	}
	// runc run sees its container's first process exit: it ends too.
	if code := r.wait(); code == 0 {
		h.t.Errorf("the killed agent's runc exited with 0: %s", r.describe())
	}
	deadline := time.Now().Add(exitDeadline)
	for {
		var zombies []int
		for _, pid := range childrenOf(c.pid) {
			if stat := readAll(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(stat, ") Z ") {
				zombies = append(zombies, pid)
			}
		}
		if len(zombies) > 0 {
			return zombies
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no zombie below the target's init (PID %d) %v after the agent was killed; its children: %v", c.pid, exitDeadline, childrenOf(c.pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// childrenOf lists the children of pid.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		for _, f := range strings.Fields(readAll(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// TestKubectlDebugAgentKilledWhole is issue 9's case 4: the agent
// container is killed whole while it holds the target (both of its
// processes: the "both killed" case, left to the mark). The killed holder
// stays a zombie of the frozen PID 1, which cannot reap it, and its
// /proc/<pid>/cgroup still names the dead agent's cgroup. A new agent's
// `cgfreeze thaw`, with no --pid, must not count the zombie as another
// container's workload (it did: exit 4, "not the only workload"): it undoes
// the freeze, and the target runs as before.
func TestKubectlDebugAgentKilledWhole(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			app := rt.startContainer(containerOpts{name: "app"})
			before := h.snapshot(app.cg)
			r, agent := rt.startAgent(app, "-o", "json")
			r.waitEvent("frozen")
			zombies := rt.killAgentWhole(r, app)
			t.Logf("zombies of the frozen init (PID %d): %v", app.pid, zombies)
			rt.requireGone("the killed agent", agent)
			rt.requireFrozen("after the agent was killed whole", app)
			h.requireStill("after the agent was killed whole", app.cg, stillFor/2, app.w)

			r, _ = rt.startAgent(app, "thaw", "-o", "json")
			e := r.nextEvent()
			if code := r.wait(); code != 0 {
				t.Fatalf("thaw by a new agent: exit %d, want 0 (event %s): %s", code, e.raw, r.describe())
			}
			if e.Event != "recovered" || e.State != "thawed" {
				t.Errorf("thaw by a new agent: event %s, want recovered, state thawed", e.raw)
			}
			rt.requireEvent(e, app)
			rt.requireThawed("after the new agent's thaw", app)
			h.requireProgress("after the new agent's thaw", app.w)
			h.requireSameCgroups("after the new agent's thaw", before, app.pid)
			h.checkLeftovers()
		})
	}
}

// TestKubectlDebugThawMarkedSharedPID: in a pod that shares its PID
// namespace, an agent froze PID 1 (the pause container) on purpose
// (--pid 1) and was killed whole. A freeze with no --pid is refused there
// (the app is another workload), but a `cgfreeze thaw` with no --pid of a
// target that carries cgfreeze's mark is not: it undoes what a cgfreeze
// did. The app is never touched.
func TestKubectlDebugThawMarkedSharedPID(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			pause := rt.startContainer(containerOpts{name: "pause", pause: true})
			app := rt.startContainer(containerOpts{name: "app", pod: pause})
			pauseBefore, appBefore := h.snapshot(pause.cg), h.snapshot(app.cg)
			r, _ := rt.startAgent(pause, "-o", "json", "--pid", "1")
			r.waitEvent("frozen")
			rt.killAgentWhole(r, pause)
			rt.requireFrozen("the pause container after the agent was killed whole", pause)

			// Freezing with no --pid is still refused: the check protects
			// freezes.
			r, _ = rt.startAgent(pause, "-o", "json")
			r.requireRefusal(exitUnsafeTarget)
			rt.requireFrozen("the pause container after the refused freeze", pause)

			r, _ = rt.startAgent(pause, "thaw", "-o", "json")
			e := r.nextEvent()
			if code := r.wait(); code != 0 {
				t.Fatalf("thaw of the marked PID 1: exit %d, want 0 (event %s): %s", code, e.raw, r.describe())
			}
			if e.Event != "recovered" || e.State != "thawed" {
				t.Errorf("thaw of the marked PID 1: event %s, want recovered, state thawed", e.raw)
			}
			rt.requireThawed("the pause container after the thaw", pause)
			rt.requireThawed("the app, never frozen", app)
			h.requireProgress("the app", app.w)
			h.requireSameCgroups("the pause container", pauseBefore, pause.pid)
			h.requireSameCgroups("the app", appBefore, app.pid)
			h.checkLeftovers()
		})
	}
}
