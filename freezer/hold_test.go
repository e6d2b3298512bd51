//go:build linux

package freezer

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A running Hold on a fake target.
type runningHold struct {
	t       *testing.T
	f       *Frozen
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	reports []HoldReport
}

func startHold(t *testing.T, ft fakeTarget) *runningHold {
	t.Helper()
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &runningHold{t: t, f: f, cancel: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- f.Hold(ctx, func(r HoldReport) {
			h.mu.Lock()
			h.reports = append(h.reports, r)
			h.mu.Unlock()
		})
	}()
	t.Cleanup(cancel)
	return h
}

// waitReport waits for a report of kind and what on cg.
func (h *runningHold) waitReport(kind, what, cg string) HoldReport {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, r := range h.reports {
			if r.Kind == kind && r.What == what && r.Cgroup == cg {
				h.mu.Unlock()
				return r
			}
		}
		h.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.t.Fatalf("no %s %s report on %s; reports: %+v", kind, what, cg, h.reports)
	return HoldReport{}
}

func (h *runningHold) count(kind, what string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.reports {
		if r.Kind == kind && r.What == what {
			n++
		}
	}
	return n
}

// end waits for Hold to return on its own, within d.
func (h *runningHold) end(d time.Duration) error {
	h.t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(d):
		h.t.Fatalf("Hold did not end within %v", d)
		return nil
	}
}

// stop ends the hold through its context and thaws.
func (h *runningHold) stop() {
	h.t.Helper()
	start := time.Now()
	h.cancel()
	if err := h.end(time.Second); err != nil {
		h.t.Errorf("Hold ended by its context = %v, want nil", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		h.t.Errorf("Hold took %v to end after its context", d)
	}
	if err := h.f.Thaw(testCtx(h.t, 5*time.Second)); err != nil {
		h.t.Fatal(err)
	}
}

func TestFakeHoldUntilContext(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			ft.k.MustMkdir(ft.sub("worker"))
			ft.k.Start(ft.sub("worker"), 201)
			h := startHold(t, ft)
			time.Sleep(150 * time.Millisecond)
			ft.requireHeld(t, "during the hold")
			h.stop()
			if n := len(h.reports); n != 0 {
				t.Errorf("an undisturbed hold reported %+v", h.reports)
			}
			ft.requireRestored(t, "after the hold", map[int]string{101: fakeTargetPath, 201: ft.sub("worker")})
		})
	}
}

// Case 3: the target's cgroup emptied, or removed, during the hold ends it
// with ErrTargetGone; the thaw after it leaves nothing.
func TestFakeHoldTargetGone(t *testing.T) {
	for _, s := range allStrategies {
		for _, removed := range []bool{false, true} {
			name := string(s) + "/emptied"
			if removed {
				name = string(s) + "/removed"
			}
			t.Run(name, func(t *testing.T) {
				ft := newFakeTarget(t, s, 101, 102)
				h := startHold(t, ft)
				time.Sleep(20 * time.Millisecond)
				start := time.Now()
				ft.k.Exit(101, 102)
				if removed {
					if s == StrategySubtree {
						// Only once cgfreeze's child is gone can the
						// target be removed.
						if err := ft.k.Rmdir(ft.ownChild()); err != nil {
							t.Fatal(err)
						}
					}
					if err := ft.k.Rmdir(fakeTargetPath); err != nil {
						t.Fatal(err)
					}
				}
				err := h.end(3 * time.Second)
				// Emptied first: the removal comes after.
				if !errors.Is(err, ErrTargetGone) {
					t.Fatalf("Hold = %v, want ErrTargetGone", err)
				}
				t.Logf("the hold ended %v after the change: %v", time.Since(start).Round(time.Millisecond), err)
				if err := h.f.Thaw(testCtx(t, 2*time.Second)); err != nil {
					t.Fatalf("Thaw after the target went = %v", err)
				}
				ft.requireRestored(t, "after the thaw", nil)
				if removed && ft.k.Exists(fakeTargetPath) {
					t.Errorf("the target came back")
				}
			})
		}
	}
}

// The runtime or owner thaws the target: the hold ends, and does not fight.
func TestFakeHoldThawedByOther(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			h := startHold(t, ft)
			time.Sleep(20 * time.Millisecond)
			thawed := fakeTargetPath
			if s == StrategySubtree {
				thawed = ft.ownChild()
			}
			ft.k.SetFreeze(thawed, false)
			if err := h.end(3 * time.Second); !errors.Is(err, ErrThawedByOther) {
				t.Fatalf("Hold = %v, want ErrThawedByOther", err)
			}
			if ft.k.Requested(thawed) {
				t.Errorf("the hold froze %s again", thawed)
			}
			if err := h.f.Thaw(testCtx(t, 2*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after the thaw", map[int]string{101: fakeTargetPath})
		})
	}
}

// Case 7 on v1 and direct: the kernel keeps what is created or joins below
// a frozen target frozen; the hold has nothing to repair.
func TestFakeHoldKernelKeepsFrozen(t *testing.T) {
	for _, s := range []Strategy{StrategyFreezer, StrategyDirect} {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			h := startHold(t, ft)
			ft.k.MustMkdir(ft.sub("new"))
			ft.k.Start(ft.sub("new"), 601)
			ft.k.Start(fakeTargetPath, 501)
			time.Sleep(150 * time.Millisecond)
			ft.requireHeld(t, "after a child and a process appeared")
			h.stop()
			if len(h.reports) != 0 {
				t.Errorf("reports %+v, want none", h.reports)
			}
			ft.requireRestored(t, "after the hold", map[int]string{101: fakeTargetPath, 501: fakeTargetPath, 601: ft.sub("new")})
		})
	}
}

// markChildren returns the children that the subtree mark lists.
func (ft fakeTarget) markChildren(t *testing.T) []string {
	t.Helper()
	v, ok := ft.k.Fake.Xattr(ft.ownChild(), markXattr)
	if !ok {
		t.Fatal("no mark on the cgfreeze child")
	}
	var m mark
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		t.Fatal(err)
	}
	slices.Sort(m.Children)
	return m.Children
}

// Case 7 and the joins on subtree: each repair, its report, the mark that
// a recovery would read, and the thaw back to the state before.
func TestFakeHoldSubtreeRepairs(t *testing.T) {
	ft := newFakeTarget(t, StrategySubtree, 101)
	ft.k.MustMkdir(ft.sub("worker"), ft.sub("paused"))
	ft.k.Start(ft.sub("worker"), 201)
	ft.k.Start(ft.sub("paused"), 301)
	ft.k.SetFreeze(ft.sub("paused"), true) // another tool's freeze
	h := startHold(t, ft)

	// A process joins the target's own cgroup (kubectl exec).
	ft.k.Start(fakeTargetPath, 501)
	r := h.waitReport("repaired", "joined", fakeTargetPath)
	if r.Processes != 1 || ft.k.CgroupOf(501) != cgKey(ft.ownChild()) {
		t.Errorf("joined: %+v, process 501 in %s", r, ft.k.CgroupOf(501))
	}
	t.Logf("joined: repaired in %v", r.Latency)

	// A child cgroup created during the hold.
	ft.k.MustMkdir(ft.sub("new"))
	ft.k.Start(ft.sub("new"), 601)
	r = h.waitReport("repaired", "child_created", ft.sub("new"))
	t.Logf("child_created: repaired in %v", r.Latency)

	// A child cgfreeze froze, thawed by someone.
	ft.k.SetFreeze(ft.sub("worker"), false)
	r = h.waitReport("repaired", "child_thawed", ft.sub("worker"))
	t.Logf("child_thawed: repaired in %v", r.Latency)

	// The child another tool froze before the freeze, thawed by it.
	ft.k.SetFreeze(ft.sub("paused"), false)
	h.waitReport("repaired", "child_thawed", ft.sub("paused"))

	// A child that comes and goes is no error.
	ft.k.MustMkdir(ft.sub("brief"))
	if err := ft.k.Rmdir(ft.sub("brief")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	ft.requireHeld(t, "after the repairs")
	if got, want := ft.markChildren(t), []string{"new", "paused", "worker"}; !slices.Equal(got, want) {
		t.Errorf("the mark lists children %v, want %v", got, want)
	}

	// A child cgfreeze froze, emptied and removed by its owner, is
	// dropped.
	ft.k.Exit(601)
	if err := ft.k.Rmdir(ft.sub("new")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for slices.Contains(ft.markChildren(t), "new") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := ft.markChildren(t); slices.Contains(got, "new") {
		t.Errorf("the mark still lists a removed child: %v", got)
	}
	select {
	case err := <-h.done:
		t.Fatalf("the hold ended: %v", err)
	default:
	}
	if n := h.count("violation", ""); n != 0 {
		t.Errorf("violations: %+v", h.reports)
	}
	h.stop()
	// Every child is back to what it was before cgfreeze's own write: 0,
	// "paused" included (its tool thawed it during the hold).
	ft.requireRestored(t, "after the hold", map[int]string{101: fakeTargetPath, 201: ft.sub("worker"), 301: ft.sub("paused"), 501: fakeTargetPath})
}

// What the hold cannot repair it reports, once, and goes on holding.
func TestFakeHoldSubtreeViolations(t *testing.T) {
	ft := newFakeTarget(t, StrategySubtree, 101)
	h := startHold(t, ft)

	// A child whose tasks do not freeze.
	ft.k.MustMkdir(ft.sub("stuck"))
	ft.k.Stick(ft.sub("stuck"), true)
	ft.k.Start(ft.sub("stuck"), 701)
	r := h.waitReport("violation", "child_created", ft.sub("stuck"))
	if r.Err == nil {
		t.Errorf("a violation without its error: %+v", r)
	}

	// A process that cannot be moved.
	ft.k.FailWrites(ft.ownChild()+"/cgroup.procs", "801", unix.EPERM)
	ft.k.Start(fakeTargetPath, 801)
	r = h.waitReport("violation", "joined", fakeTargetPath)
	if !errors.Is(r.Err, unix.EPERM) {
		t.Errorf("joined violation: %+v, want EPERM", r)
	}
	time.Sleep(100 * time.Millisecond)
	if n := h.count("violation", "joined"); n != 1 {
		t.Errorf("the joined violation was reported %d times, want once", n)
	}
	// Once the move works, the repair follows.
	ft.k.FailWrites(ft.ownChild()+"/cgroup.procs", "801", nil)
	h.waitReport("repaired", "joined", fakeTargetPath)
	ft.k.Stick(ft.sub("stuck"), false)
	h.stop()
	ft.requireRestored(t, "after the hold", map[int]string{101: fakeTargetPath, 701: ft.sub("stuck"), 801: fakeTargetPath})
}

// Case 7 at freeze time: a child cgroup that vanishes while the subtree
// freeze lists the children is no error.
func TestFakeSubtreeFreezeVanishedChild(t *testing.T) {
	ft := newFakeTarget(t, StrategySubtree, 101)
	ft.k.MustMkdir(ft.sub("a"), ft.sub("b"))
	ft.k.Start(ft.sub("a"), 201)
	// The child vanishes between the listing and cgfreeze's write to its
	// cgroup.freeze, as a workload's rmdir would make it.
	ft.k.BeforeWrite(func(p, value string) {
		if p == cgKey(ft.sub("b/cgroup.freeze")) && value == "1" {
			if err := ft.k.Rmdir(ft.sub("b")); err != nil {
				t.Error(err)
			}
		}
	})
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatalf("Freeze with a vanishing child = %v", err)
	}
	ft.k.BeforeWrite(nil)
	if ft.k.Exists(ft.sub("b")) {
		t.Fatal("the test did not remove the child")
	}
	if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after the thaw", map[int]string{101: fakeTargetPath, 201: ft.sub("a")})
}
