package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	"golang.org/x/sys/unix"
)

// The hold (freezer.Frozen.Hold) on real cgroups, through the library, as
// a long-lived process would use it: the twins of the unit tests on the
// fake file system (freezer/hold_test.go). The subtree strategy is forced
// on a cgroup of the test's (Target.Strategy): the same code as in a
// delegated namespace, without the agent's namespaces.

// holdEndDeadline bounds how long a hold takes to see the end of its
// target (the v1 hold counts processes every second).
const holdEndDeadline = 3 * time.Second

type libHold struct {
	h       *harness
	tg      *target
	target  *freezer.Target
	f       *freezer.Frozen
	cancel  context.CancelFunc
	done    chan error
	ended   bool
	thawed  bool
	mu      sync.Mutex
	reports []freezer.HoldReport
}

// freezeHold freezes tg through the library (with strategy s, "" for the
// one Resolve picks) and starts holding it.
func (tg *target) freezeHold(s freezer.Strategy) *libHold {
	h := tg.h
	h.t.Helper()
	version := 2
	if tg.kind == kindV1 {
		version = 1
	}
	target, err := freezer.Resolve(freezer.Options{PID: tg.w.pid, Version: version})
	if err != nil {
		h.t.Fatal(err)
	}
	if s != "" {
		target.Strategy = s
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := freezer.Freeze(ctx, target)
	if err != nil {
		_ = target.Close()
		h.t.Fatal(err)
	}
	hctx, hcancel := context.WithCancel(context.Background())
	l := &libHold{h: h, tg: tg, target: target, f: f, cancel: hcancel, done: make(chan error, 1)}
	go func() {
		l.done <- f.Hold(hctx, func(r freezer.HoldReport) {
			l.mu.Lock()
			l.reports = append(l.reports, r)
			l.mu.Unlock()
			if r.Kind == "violation" {
				h.t.Logf("hold report: %+v", r)
			}
		})
	}()
	t := h.t
	h.t.Cleanup(func() {
		if !l.thawed {
			l.cancel()
			if !l.ended {
				if err := <-l.done; err != nil {
					t.Logf("the hold ended: %v", err)
				}
			}
			l.thaw()
		}
	})
	return l
}

// end waits for the hold to end by itself.
func (l *libHold) end(d time.Duration) error {
	l.h.t.Helper()
	select {
	case err := <-l.done:
		l.ended = true
		return err
	case <-time.After(d):
		l.h.t.Fatalf("the hold did not end within %v", d)
		return nil
	}
}

// stop ends the hold through its context, and thaws.
func (l *libHold) stop() {
	l.h.t.Helper()
	l.cancel()
	if err := l.end(time.Second); err != nil {
		l.h.t.Errorf("the hold ended by its context returned %v", err)
	}
	l.thaw()
}

// thaw thaws (whatever the hold returned) and closes the target.
func (l *libHold) thaw() {
	l.h.t.Helper()
	l.thawed = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.f.Thaw(ctx); err != nil {
		l.h.t.Errorf("thaw after the hold: %v", err)
	}
	if err := l.target.Close(); err != nil {
		l.h.t.Error(err)
	}
}

// waitReport waits for the repair what of cg.
func (l *libHold) waitReport(what, cg string) freezer.HoldReport {
	const kind = "repaired"
	l.h.t.Helper()
	deadline := time.Now().Add(holdEndDeadline)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, r := range l.reports {
			if r.Kind == kind && r.What == what && r.Cgroup == cg {
				l.mu.Unlock()
				return r
			}
		}
		l.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	l.h.t.Fatalf("no %s %s report on %s within %v; reports %+v", kind, what, cg, holdEndDeadline, l.allReports())
	return freezer.HoldReport{}
}

func (l *libHold) allReports() []freezer.HoldReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reports)
}

func (l *libHold) requireNoViolation() {
	l.h.t.Helper()
	for _, r := range l.allReports() {
		if r.Kind == "violation" {
			l.h.t.Errorf("violation: %+v", r)
		}
	}
}

func (l *libHold) requireRunning() {
	l.h.t.Helper()
	select {
	case err := <-l.done:
		l.ended = true
		l.h.t.Fatalf("the hold ended: %v", err)
	default:
	}
}

// waitUntil polls cond every millisecond until it holds, and returns how
// long that took.
func waitUntil(t testing.TB, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// Case 3, and the other ends of a hold: the target's cgroup emptied or
// removed ends the hold with ErrTargetGone; its runtime's or owner's thaw
// with ErrThawedByOther. The thaw after it succeeds and leaves nothing.
func TestHoldEnds(t *testing.T) {
	for _, tt := range []struct {
		name string
		kind kind
		s    freezer.Strategy
		end  string // "emptied", "removed", "moved" (v1: processes moved out), "thawed"
		want error
	}{
		{"v2-direct/removed", kindDirect, "", "removed", freezer.ErrTargetGone},
		{"v2-direct/emptied", kindDirect, "", "emptied", freezer.ErrTargetGone},
		{"v2-direct/thawed", kindDirect, "", "thawed", freezer.ErrThawedByOther},
		{"v2-subtree/removed", kindDirect, freezer.StrategySubtree, "removed", freezer.ErrTargetGone},
		{"v2-subtree/emptied", kindDirect, freezer.StrategySubtree, "emptied", freezer.ErrTargetGone},
		{"v2-subtree/thawed", kindDirect, freezer.StrategySubtree, "thawed", freezer.ErrThawedByOther},
		{"v1/moved", kindV1, "", "moved", freezer.ErrTargetGone},
		{"v1/thawed", kindV1, "", "thawed", freezer.ErrThawedByOther},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(tt.kind, targetOpts{noPdeathsig: true, nested: true})
			l := tg.freezeHold(tt.s)
			time.Sleep(50 * time.Millisecond)
			l.requireRunning()
			start := time.Now()
			switch tt.end {
			case "emptied", "removed":
				// v2 lets SIGKILL through a freeze: its manager stops it.
				if err := killTree(tg.cg); err != nil {
					t.Fatal(err)
				}
				if tt.end == "removed" {
					if err := removeTree(tg.cg); err != nil {
						t.Fatal(err)
					}
				}
			case "moved":
				// A frozen v1 task cannot die; a v1 cgroup empties when
				// its processes are moved out.
				elsewhere := h.newCgroup(1)
				procs, err := tg.cg.treeProcs()
				if err != nil {
					t.Fatal(err)
				}
				for _, pids := range procs {
					for _, pid := range pids {
						if err := elsewhere.write("cgroup.procs", strconv.Itoa(pid)); err != nil {
							t.Fatal(err)
						}
					}
				}
			case "thawed":
				switch {
				case tt.kind == kindV1:
					err := tg.cg.write("freezer.state", "THAWED")
					if err != nil {
						t.Fatal(err)
					}
				case tt.s == freezer.StrategySubtree:
					child := tg.cg.ownChild()
					if child == nil {
						t.Fatalf("no cgfreeze child under %s", tg.cg)
					}
					if err := child.write("cgroup.freeze", "0"); err != nil {
						t.Fatal(err)
					}
				default:
					if err := tg.cg.write("cgroup.freeze", "0"); err != nil {
						t.Fatal(err)
					}
				}
			}
			changed := time.Since(start)
			err := l.end(holdEndDeadline)
			if !errors.Is(err, tt.want) {
				t.Fatalf("the hold returned %v, want %v", err, tt.want)
			}
			t.Logf("the hold ended %v after the change (which took %v): %v", time.Since(start).Round(time.Microsecond), changed.Round(time.Microsecond), err)
			l.thaw()
			if tt.end == "thawed" {
				h.requireProgress("after the hold ended", tg.w)
			}
			h.checkLeftovers()
		})
	}
}

// Case 7 on v1 and direct: a child cgroup created during the hold, a
// process that joins the target, a child thawed by its own freeze file:
// the kernel keeps all of it frozen under the frozen target, and the hold
// has nothing to report.
func TestHoldKernelKeepsFrozen(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{noPdeathsig: true, nested: true})
			l := tg.freezeHold("")
			created := h.child(tg.cg, "created")
			joined := h.joinWorkload(created)
			inTarget := h.joinWorkload(tg.cg)
			if k == kindV1 {
				if err := tg.subs[0].write("freezer.state", "THAWED"); err != nil {
					t.Fatal(err)
				}
			} else if err := tg.subs[0].write("cgroup.freeze", "0"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(inFlight)
			h.requireStill("children under the held target", tg.cg, stillFor, tg.w, joined, inTarget)
			tg.requireFrozen("during the hold")
			l.requireRunning()
			if r := l.allReports(); len(r) != 0 {
				t.Errorf("reports %+v, want none", r)
			}
			l.stop()
			h.requireProgress("after the thaw", tg.w, joined, inTarget)
			h.checkLeftovers()
		})
	}
}

// joinWorkload starts a counting workload in a cgroup of the test's and
// moves its main process into cg, as kubectl exec or a runtime's exec
// starts a process in a container's cgroup.
func (h *harness) joinWorkload(cg *cgroup) *workload {
	h.t.Helper()
	w := h.startWorkload(h.newCgroup(cg.version), workloadOpts{noPdeathsig: true})
	if err := cg.write("cgroup.procs", strconv.Itoa(w.pid)); err != nil {
		h.t.Fatalf("move %d into %s: %v", w.pid, cg, err)
	}
	return w
}

// cloneInto starts a process that sleeps for long directly in cg, by
// clone3(CLONE_INTO_CGROUP) as crun exec does, and returns its PID; it is
// killed and reaped at the end of the test.
func (h *harness) cloneInto(cg *cgroup) int {
	h.t.Helper()
	dir, err := os.Open(cg.dir)
	if err != nil {
		h.t.Fatal(err)
	}
	defer dir.Close()
	cmd := exec.Command(busybox, "sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd()), Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("clone a process into %s: %v", cg, err)
	}
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// inFlight is how long the children that a counting workload forked
// before it was moved (usleep 10 ms, mv) may still run where they were.
const inFlight = 50 * time.Millisecond

// Case 7 on subtree, and the joins: a process that joins the target's own
// cgroup is moved into the frozen child, a child cgroup created during the
// hold is frozen, a child thawed by another is frozen again, a child that
// another tool froze before the freeze and thaws during the hold is frozen;
// each within a latency that is logged. After the thaw, every child is back
// to 0 (what it read before cgfreeze's own write).
func TestHoldSubtreeRepairs(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindDirect, targetOpts{noPdeathsig: true, nested: true})
	paused := h.child(tg.cg, "paused")
	pausedW := h.startWorkload(paused, workloadOpts{noPdeathsig: true})
	if err := paused.write("cgroup.freeze", "1"); err != nil { // another tool's
		t.Fatal(err)
	}
	l := tg.freezeHold(freezer.StrategySubtree)
	child := tg.cg.ownChild()
	if child == nil {
		t.Fatalf("no cgfreeze child under %s", tg.cg)
	}

	// kubectl exec: a process joins the target's own cgroup.
	joined := h.joinWorkload(tg.cg)
	moved := waitUntil(t, "the joined process moved", holdEndDeadline, func() bool {
		cg, err := procCgroup(joined.pid, 2)
		return err == nil && cg == child.rel
	})
	r := l.waitReport("joined", tg.cg.rel)
	t.Logf("joined: in the frozen child %v after it joined (hold's latency %v)", moved, r.Latency)

	// crun exec, runc exec from 1.4: a process created in the target's own
	// cgroup by clone3(CLONE_INTO_CGROUP), which writes no cgroup.procs
	// (the inotify that sees a join by a write does not fire): the join
	// scan finds it.
	clonedAt := time.Now()
	cloned := h.cloneInto(tg.cg)
	for {
		if cg, err := procCgroup(cloned, 2); err == nil && cg == child.rel {
			break
		}
		if time.Since(clonedAt) > holdEndDeadline {
			t.Fatalf("the process cloned into %s is not in the frozen child %v after it started", tg.cg, holdEndDeadline)
		}
		time.Sleep(100 * time.Microsecond)
	}
	movedCloned := time.Since(clonedAt)
	var joins []freezer.HoldReport
	for deadline := time.Now().Add(holdEndDeadline); len(joins) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no second joined report within %v; reports %+v", holdEndDeadline, l.allReports())
		}
		joins = nil
		for _, r := range l.allReports() {
			if r.Kind == "repaired" && r.What == "joined" {
				joins = append(joins, r)
			}
		}
	}
	t.Logf("joined by CLONE_INTO_CGROUP: in the frozen child %v after it started (hold's latency %v, within subtreeJoinScan)", movedCloned, joins[1].Latency)

	// A child cgroup created during the hold, with a process.
	created := h.child(tg.cg, "created")
	frozenAfter := waitUntil(t, "the created child frozen", holdEndDeadline, func() bool {
		v, err := created.read("cgroup.freeze")
		return err == nil && v == "1"
	})
	r = l.waitReport("child_created", created.rel)
	t.Logf("child_created: cgroup.freeze 1 %v after the mkdir (hold's latency to the confirmed freeze %v)", frozenAfter, r.Latency)
	createdW := h.joinWorkload(created)

	// A child cgfreeze froze, thawed by another.
	if err := tg.subs[0].write("cgroup.freeze", "0"); err != nil {
		t.Fatal(err)
	}
	frozenAgain := waitUntil(t, "the thawed child frozen again", holdEndDeadline, func() bool {
		v, err := tg.subs[0].read("cgroup.freeze")
		return err == nil && v == "1"
	})
	r = l.waitReport("child_thawed", tg.subs[0].rel)
	t.Logf("child_thawed: cgroup.freeze 1 again %v after the thaw (hold's latency to the confirmed freeze %v)", frozenAgain, r.Latency)

	// The other tool thaws its child.
	if err := paused.write("cgroup.freeze", "0"); err != nil {
		t.Fatal(err)
	}
	l.waitReport("child_thawed", paused.rel)

	time.Sleep(inFlight)
	h.requireStill("after the repairs", tg.cg, stillFor, tg.w, joined, createdW, pausedW)
	l.requireRunning()
	l.requireNoViolation()
	l.stop()
	h.requireProgress("after the thaw", tg.w, joined, createdW, pausedW)
	all, err := tg.cg.walk()
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range all {
		if v, err := cg.read("cgroup.freeze"); err != nil || v != "0" {
			t.Errorf("%s/cgroup.freeze reads %q (%v) after the thaw, want 0", cg, v, err)
		}
	}
	if cg, err := procCgroup(joined.pid, 2); err != nil || cg != tg.cg.rel {
		t.Errorf("the joined process is in %q (%v) after the thaw, want %s", cg, err, tg.cg.rel)
	}
	h.checkLeftovers()
}

// Case 7's churn on subtree: child cgroups created and removed all the
// time, during the freezes, holds and thaws: no freeze fails on a vanished
// child, the hold goes on without a violation, nothing is left.
func TestHoldSubtreeChurn(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindDirect, targetOpts{noPdeathsig: true, nested: true})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churned, churnErrs int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			dir := filepath.Join(tg.cg.dir, fmt.Sprintf("churn%d", i%4))
			if err := os.Mkdir(dir, 0o755); err == nil {
				churned++
			}
			time.Sleep(time.Duration(i%3) * time.Millisecond)
			if err := ignoreGone(rmdirRetry(dir)); err != nil {
				churnErrs++
			}
		}
	}()
	for round := 0; round < 15; round++ {
		l := tg.freezeHold(freezer.StrategySubtree)
		time.Sleep(30 * time.Millisecond)
		l.requireRunning()
		l.requireNoViolation()
		l.stop()
	}
	close(stop)
	wg.Wait()
	t.Logf("%d child cgroups created and removed meanwhile (%d removals failed)", churned, churnErrs)
	h.requireProgress("after the churn", tg.w)
	h.checkLeftovers()
}

// rmdirRetry removes an empty cgroup, retrying while the kernel says busy
// (a frozen cgroup being thawed).
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// holdIdleFor is how long TestHoldIdle holds an undisturbed target.
const holdIdleFor = 3 * time.Second

// TestHoldIdle: an undisturbed hold keeps the target frozen, reports
// nothing, and ends at once when its context does, so that the thaw after
// it waits for nothing. It logs the hold's CPU time (this test process's,
// which does nothing else meanwhile) and the time from the end of the hold
// to the confirmed thaw: docs/design.md, "The hold", has the figures.
func TestHoldIdle(t *testing.T) {
	for _, tt := range []struct {
		kind kind
		s    freezer.Strategy
	}{{kindV1, ""}, {kindDirect, ""}, {kindDirect, freezer.StrategySubtree}} {
		name := string(tt.kind)
		if tt.s != "" {
			name = "v2-" + string(tt.s)
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(tt.kind, targetOpts{noPdeathsig: true, nested: true})
			l := tg.freezeHold(tt.s)
			before := cpuTime(t)
			h.requireStill("during an idle hold", tg.cg, holdIdleFor, tg.w)
			used := cpuTime(t) - before
			l.requireRunning()
			if r := l.allReports(); len(r) != 0 {
				t.Errorf("an undisturbed hold reported %+v", r)
			}
			start := time.Now()
			l.cancel()
			if err := l.end(time.Second); err != nil {
				t.Errorf("the hold returned %v", err)
			}
			ended := time.Since(start)
			l.thaw()
			thawed := time.Since(start)
			if ended > 50*time.Millisecond {
				t.Errorf("the hold took %v to end after its context", ended)
			}
			t.Logf("idle hold: %v of CPU in %v (%.3f%% of a CPU); the hold ended %v after its context, thawed %v after it", used, holdIdleFor, 100*used.Seconds()/holdIdleFor.Seconds(), ended, thawed)
			h.requireProgress("after the thaw", tg.w)
			h.checkLeftovers()
		})
	}
}

// cpuTime is the CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
