package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run real containers with runc: a target running a
// busybox workload that counts, and the image that TestMain built from the
// Dockerfile as an agent container, started the way kubelet starts an
// ephemeral container for
//
//	kubectl debug -it pod/web --image=<registry>/cgfreeze --target=app --profile=sysadmin
//
// (the README's example; runtime.agentSpec). Every scenario runs on cgroup
// v1 (this host's hierarchy, runc's cgroupfs driver) and on cgroup v2
// (runc in a mount namespace where cgroup2 is /sys/fs/cgroup, nsdelegate
// on, the target in a cgroup namespace of its own, as containerd does on
// v2), and checks that the workload stops while frozen and runs after,
// that every process is back in its cgroup, that nothing of cgfreeze is
// left, and that the containers are deleted (runtime.cleanup).

var versions = []int{1, 2}

// expected is what the agent's events say about target c: PID 1 of the
// target's PID namespace (or of the pod's, for a container found by ID),
// the container's ID, and on v1 the target's cgroup in the host's view (the
// agent enters the target's cgroup namespace, the host's on v1), on v2 the
// root of the target's own cgroup namespace, frozen through a child.
func (rt *ociRuntime) expected(c *container) event {
	if rt.version == 1 {
		return event{PID: nsPid(c.pid), ContainerID: c.id, Cgroup: c.cg.rel, Version: 1, Strategy: "freezer"}
	}
	return event{PID: nsPid(c.pid), ContainerID: c.id, Cgroup: "/", Version: 2, Strategy: "subtree"}
}

func (rt *ociRuntime) requireEvent(e event, c *container) {
	rt.h.t.Helper()
	want := rt.expected(c)
	if e.PID != want.PID || e.ContainerID != want.ContainerID || e.Cgroup != want.Cgroup || e.Version != want.Version || e.Strategy != want.Strategy {
		rt.h.t.Errorf("event %s: want pid %d, container_id %s, cgroup %q, version %d, strategy %q",
			e.raw, want.PID, want.ContainerID, want.Cgroup, want.Version, want.Strategy)
	}
}

// requireFrozen checks from the host that the kernel has c frozen.
func (rt *ociRuntime) requireFrozen(what string, c *container) {
	h := rt.h
	h.t.Helper()
	if rt.version == 1 {
		if st, err := c.cg.read("freezer.state"); err != nil || st != "FROZEN" {
			h.t.Errorf("%s: %s reads %q (%v), not FROZEN", what, c.cg.file("freezer.state"), st, err)
		}
		return
	}
	child := c.cg.ownChild()
	if child == nil {
		h.t.Errorf("%s: no cgfreeze child under %s", what, c.cg)
		return
	}
	if v, err := child.frozen(); err != nil || v != "1" {
		h.t.Errorf("%s: %s says frozen %q (%v), not 1", what, child.file("cgroup.events"), v, err)
	}
	if pids, err := child.procs(); err != nil || len(pids) == 0 {
		h.t.Errorf("%s: %s holds %v (%v): the container's processes should be there", what, child.file("cgroup.procs"), pids, err)
	}
}

// requireThawed checks from the host that c runs unfrozen as it did.
func (rt *ociRuntime) requireThawed(what string, c *container) {
	h := rt.h
	h.t.Helper()
	if rt.version == 1 {
		if st, err := c.cg.read("freezer.state"); err != nil || st != "THAWED" {
			h.t.Errorf("%s: %s reads %q (%v), not THAWED", what, c.cg.file("freezer.state"), st, err)
		}
		return
	}
	if child := c.cg.ownChild(); child != nil {
		h.t.Errorf("%s: %s is still there", what, child)
	}
	if v, err := c.cg.frozen(); err != nil || v != "0" {
		h.t.Errorf("%s: %s says frozen %q (%v), not 0", what, c.cg.file("cgroup.events"), v, err)
	}
}

// requireGone checks that runc knows container id no more (`runc run`
// deletes its container when the process exits).
func (rt *ociRuntime) requireGone(what, id string) {
	rt.h.t.Helper()
	if out, err := rt.runc("state", id); err == nil {
		rt.h.t.Errorf("%s: container %s is still there: %s", what, id[:12], out)
	}
}

// agentCycle starts an agent with args against c (the target the agent's
// PID namespace shows), waits until it has frozen c, checks that c is
// still, runs whileFrozen, stops the agent with `runc kill AGENT sig` and
// checks that it thawed c before it exited, with exit code 0, and that
// every process is back where it was.
func (rt *ociRuntime) agentCycle(what string, pidns, c *container, sig syscall.Signal, whileFrozen func(*run), args ...string) {
	h := rt.h
	h.t.Helper()
	before := h.snapshot(c.cg)
	h.requireProgress(what+": before the freeze", c.w)
	r, agent := rt.startAgent(pidns, args...)
	frozen := r.waitEvent("frozen")
	h.t.Logf("%s: %s", what, frozen.raw)
	rt.requireEvent(frozen, c)
	if frozen.Processes == nil || *frozen.Processes < len(c.w.counters) {
		h.t.Errorf("%s: frozen event %s: want processes >= %d", what, frozen.raw, len(c.w.counters))
	}
	rt.requireAgent(what, r, agent, pidns, c)
	rt.requireFrozen(what+": after the frozen event", c)
	h.requireStill(what+": while frozen", c.cg, stillFor, c.w)
	if whileFrozen != nil {
		whileFrozen(r)
	}
	if !r.running() {
		h.t.Fatalf("%s: the agent exited while it should hold: %s", what, r.describe())
	}
	// As the runtime stops a container (SIGTERM), or as Ctrl-C in the
	// attached session reaches it (SIGINT).
	rt.must("kill", agent, strconv.Itoa(int(sig)))
	thawed := r.waitEvent("thawed")
	rt.requireEvent(thawed, c)
	if thawed.Reason != "signal" || thawed.Signal != sig.String() {
		h.t.Errorf("%s: thawed event %s: want reason signal, signal %q", what, thawed.raw, sig.String())
	}
	if code := r.wait(); code != 0 {
		h.t.Errorf("%s: the agent exited with %d, want 0: %s", what, code, r.describe())
	}
	// The agent has exited: the target must be thawed already.
	rt.requireThawed(what+": when the agent has exited", c)
	rt.requireGone(what, agent)
	h.requireProgress(what+": after the thaw", c.w)
	h.requireSameCgroups(what+": after the thaw", before, c.pid)
	h.checkLeftovers()
}

// requireAgent checks the ephemeral-container emulation itself, from the
// host: the process that froze c runs the image's binary (the unpacked
// image's file, not the suite's build), in pidns's PID namespace, in the
// agent container's own cgroup, and in cgroup and mount namespaces that are
// neither the target's nor the host's.
func (rt *ociRuntime) requireAgent(what string, r *run, agent string, pidns, c *container) {
	h := rt.h
	h.t.Helper()
	pid := r.cgfreezePid()
	if fi, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || !os.SameFile(fi, imageBinInfo) {
		h.t.Errorf("%s: the agent's process %d does not run the image's /cgfreeze (%v)", what, pid, err)
	}
	ns := func(p int, kind string) string {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", p, kind))
		return l
	}
	if ns(pid, "pid") != ns(pidns.pid, "pid") {
		h.t.Errorf("%s: the agent is in PID namespace %s, not the target's %s", what, ns(pid, "pid"), ns(pidns.pid, "pid"))
	}
	for _, kind := range []string{"cgroup", "mnt", "uts"} {
		if own := ns(pid, kind); own == "" || own == ns(c.pid, kind) || own == ns(os.Getpid(), kind) {
			h.t.Errorf("%s: the agent's %s namespace %q is not its own (target %s, host %s)", what, kind, own, ns(c.pid, kind), ns(os.Getpid(), kind))
		}
	}
	if got, err := procCgroup(pid, rt.version); err != nil || got != rt.cgroup(agent).rel {
		h.t.Errorf("%s: the agent is in cgroup %q (%v), not its own %q", what, got, err, rt.cgroup(agent).rel)
	}
}

// TestKubectlDebug is the README's example: the image run with no
// arguments as an ephemeral container targeting the app container freezes
// it (text events on stdout, as a person sees them) until Ctrl-C.
func TestKubectlDebug(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			app := rt.startContainer(containerOpts{name: "app"})
			rt.agentCycle("kubectl debug, Ctrl-C", app, app, syscall.SIGINT, nil)
			rt.agentCycle("a second time", app, app, syscall.SIGINT, nil)
		})
	}
}

// TestKubectlDebugRuntimeStop: the runtime stops the agent container
// (runc kill's default, SIGTERM, as when the pod is deleted): the agent
// thaws the target before it exits.
func TestKubectlDebugRuntimeStop(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			app := rt.startContainer(containerOpts{name: "app"})
			rt.agentCycle("runc kill", app, app, syscall.SIGTERM, nil, "-o", "json")
		})
	}
}

// TestKubectlDebugExec: processes that `runc exec` (kubectl exec) started
// in the target are frozen with it. A `runc exec` into the frozen target:
// on v1 runc sees the container's freezer.state FROZEN, calls it paused and
// refuses; on v2 the target's own cgroup is not frozen (the subtree
// strategy froze a child), so the new process starts in the target's
// cgroup, and the hold moves it into the frozen child (a repaired event,
// what=joined): it does not run until the thaw, then it does.
func TestKubectlDebugExec(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			app := rt.startContainer(containerOpts{name: "app"})
			rt.execCounter(app, "exec1")
			rt.execCounter(app, "exec2")
			late := filepath.Join(app.w.dir, "late")
			var lateExec string
			type execResult struct {
				err error
				out string
			}
			execDone := make(chan execResult, 1)
			rt.agentCycle("with runc exec processes", app, app, syscall.SIGINT, func(r *run) {
				switch v {
				case 1:
					out, err := rt.runc("exec", app.id, "/bin/busybox", "sh", "-c", "echo ran > /out/late")
					lateExec = fmt.Sprintf("%v: %s", err, strings.TrimSpace(out))
					if ran := readAll(late) == "ran\n"; err == nil || ran || !strings.Contains(out, "paused") {
						t.Errorf("runc exec into the frozen v1 target: %s (ran: %v); want runc to refuse a paused container", lateExec, ran)
					}
				case 2:
					// runc exec waits for its process, which the hold
					// freezes: it returns after the thaw.
					go func() {
						// It sleeps first: the hold moves a joined process
						// within its repair latency (about 10 ms, docs/design.md),
						// and a command shorter than that could end before.
						out, err := rt.runc("exec", app.id, "/bin/busybox", "sh", "-c", "sleep 0.3; echo ran > /out/late")
						execDone <- execResult{err, strings.TrimSpace(out)}
					}()
					// The exec'd process joins the target's cgroup: the
					// hold moves it into the frozen child and says so. If
					// runc exec ends first, it ran while frozen (a broken
					// promise) or runc never started it (nothing joined).
					deadline := time.Now().Add(eventDeadline)
				wait:
					for {
						select {
						case res := <-execDone:
							execDone <- res // for the check after the thaw
							if readAll(late) == "ran\n" {
								t.Errorf("the process runc exec started into the held v2 target ran while frozen (%v: %s)", res.err, res.out)
							} else {
								t.Logf("runc exec ended before any process joined the target: %v: %s", res.err, res.out)
							}
							break wait
						default:
						}
						e, ok, timedOut := r.next(100 * time.Millisecond)
						switch {
						case !timedOut && (!ok || e.Event != "repaired"):
							t.Fatalf("got %q where a repaired event was due: %s", e.raw, r.describe())
						case !timedOut:
							if e.What != "joined" || e.LatencyMS == nil {
								t.Errorf("repaired event %s: want what=joined with a latency", e.raw)
							}
							t.Logf("the exec'd process was moved into the frozen child: %s", e.raw)
							time.Sleep(stillFor) // a process that ran would have written by now
							if readAll(late) != "" {
								t.Errorf("the process runc exec started into the frozen v2 target ran while frozen")
							}
							break wait
						case time.Now().After(deadline):
							t.Fatalf("no repaired event after %v, and runc exec still runs: %s", eventDeadline, r.describe())
						}
					}
				}
				// Either way the frozen processes stay frozen.
				rt.requireFrozen("after runc exec", app)
			}, "-o", "json")
			if v == 2 {
				select {
				case res := <-execDone:
					lateExec = fmt.Sprintf("%v: %s", res.err, res.out)
					if res.err == nil && readAll(late) != "ran\n" {
						t.Errorf("runc exec after the thaw: %s; want the process to have run once thawed", lateExec)
					}
				case <-time.After(runcDeadline + time.Second):
					t.Errorf("runc exec did not return after the thaw")
				}
			}
			t.Logf("runc exec into the frozen target (v%d): %s", v, lateExec)
		})
	}
}

// TestKubectlDebugSharedPID: a pod with shareProcessNamespace: true. PID 1
// of the pod's PID namespace is the pause container (a second container,
// the infrastructure), and the app is another container. The agent with no
// target flag must not freeze the pause container: it refuses (exit 4)
// and lists the containers it sees; --container-id with a prefix of the
// app's ID freezes the app, and the pause container stays untouched.
func TestKubectlDebugSharedPID(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			pause := rt.startContainer(containerOpts{name: "pause", pause: true})
			app := rt.startContainer(containerOpts{name: "app", pod: pause})
			if n := nsPid(pause.pid); n != 1 {
				t.Fatalf("the pause container is PID %d of the pod, not 1", n)
			}

			r, agent := rt.startAgent(pause, "-o", "json")
			e := r.requireRefusal(exitUnsafeTarget)
			for _, want := range []string{"shareProcessNamespace", "--container-id",
				"/../" + pause.id + " (id " + pause.id + ")", "/../" + app.id + " (id " + app.id + ")", `"/bin/busybox sleep 1000000"`} {
				if !strings.Contains(e.Error, want) {
					t.Errorf("refusal %q lacks %q", e.Error, want)
				}
			}
			t.Logf("refusal: %s", e.Error)
			rt.requireGone("after the refusal", agent)
			h.requireProgress("after the refusal", app.w)
			rt.requireThawed("after the refusal", app)
			rt.requireThawed("the pause container after the refusal", pause)

			// No container has that ID: exit 3, with what it saw.
			r, _ = rt.startAgent(pause, "-o", "json", "--container-id", "containerd://feedface")
			e = r.requireRefusal(exitNoTarget)
			if !strings.Contains(e.Error, `no container with ID "containerd://feedface"`) || !strings.Contains(e.Error, app.id) || !strings.Contains(e.Error, pause.id) {
				t.Errorf("no-match error %q does not list the containers", e.Error)
			}

			pauseBefore := h.snapshot(pause.cg)
			rt.agentCycle("--container-id", pause, app, syscall.SIGINT, func(*run) {
				rt.requireThawed("the pause container while the app is frozen", pause)
				if st := rt.state(pause.id); st.Status != "running" {
					t.Errorf("the pause container is %q while the app is frozen", st.Status)
				}
			}, "--container-id", app.id[:12])
			h.requireSameCgroups("the pause container", pauseBefore, pause.pid)
		})
	}
}

// TestKubectlDebugRuncPause: a target that `runc pause` froze is refused
// (exit 8, another tool's freeze), and stays paused: cgfreeze does not undo
// someone else's freeze. runc resume then finds it as it left it.
func TestKubectlDebugRuncPause(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			app := rt.startContainer(containerOpts{name: "app"})
			before := h.snapshot(app.cg)
			rt.must("pause", app.id)
			if st := rt.state(app.id); st.Status != "paused" {
				t.Fatalf("runc pause: the container is %q", st.Status)
			}
			r, agent := rt.startAgent(app, "-o", "json")
			e := r.requireRefusal(exitAlreadyFrozen)
			if !strings.Contains(e.Error, "someone else") || !strings.Contains(e.Error, "runc") {
				t.Errorf("refusal %q does not say that another tool froze the target", e.Error)
			}
			rt.requireGone("after the refusal", agent)
			if st := rt.state(app.id); st.Status != "paused" {
				t.Errorf("after the refusal the container is %q, not paused", st.Status)
			}
			h.requireStill("still paused after the refusal", app.cg, stillFor, app.w)
			if child := app.cg.ownChild(); child != nil {
				t.Errorf("the refusal created %s", child)
			}
			rt.must("resume", app.id)
			h.requireProgress("after runc resume", app.w)
			h.requireSameCgroups("after runc resume", before, app.pid)
			h.checkLeftovers()
		})
	}
}

// TestKubectlDebugHolderKilled: the holder inside the agent container is
// SIGKILLed (the OOM killer's choice: it is the larger process). Its
// supervisor, the container's first process, thaws the target before it
// exits; only then does the runtime, seeing the first process exit, kill
// what is left of a container that shares another's PID namespace.
func TestKubectlDebugHolderKilled(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			h := newHarness(t)
			rt := h.newRuntime(v)
			app := rt.startContainer(containerOpts{name: "app"})
			before := h.snapshot(app.cg)
			r, agent := rt.startAgent(app, "-o", "json")
			r.waitEvent("frozen")
			rt.requireFrozen("frozen", app)
			killed := time.Now()
			if err := syscall.Kill(r.holderProcess(), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e := r.waitEvent("recovered")
			if e.Reason != "watchdog" {
				t.Errorf("after the holder's SIGKILL: %s, want recovered by the watchdog", e.raw)
			}
			t.Logf("recovered %v after the holder's SIGKILL", time.Since(killed).Round(time.Millisecond))
			if code := r.wait(); code != exitHolderDied {
				t.Errorf("the agent exited with %d, want %d: %s", code, exitHolderDied, r.describe())
			}
			rt.requireThawed("when the agent has exited", app)
			rt.requireGone("holder killed", agent)
			h.requireProgress("after the watchdog", app.w)
			h.requireSameCgroups("after the watchdog", before, app.pid)
			h.checkLeftovers()
		})
	}
}
