package integration

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests in this file are issue 9's case 5: cgfreeze owns a cgroup by
// proof (its marks), not by name. A workload's own cgroup named
// "cgfreeze", with or without a nested one holding a process, frozen by
// the workload or not, is one of the target's cgroups like any other.

var allKinds = []kind{kindV1, kindDirect, kindSubtree}

// TestWorkloadCgfreezeChild: the workload made a child cgroup named
// cgfreeze, with a worker in it and one in cgfreeze/sub. A freeze freezes
// them with the rest (on subtree: in place) and the thaw puts everything
// back where it was: no "recovery" moves the workload's processes out or
// removes its cgroups, and nothing fails (it did: exit 10 with a nested
// cgfreeze/sub, on every strategy).
func TestWorkloadCgfreezeChild(t *testing.T) {
	for _, k := range allKinds {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{subs: []string{"cgfreeze", "cgfreeze/sub", "c1"}})
			tg.cycle("a workload's cgfreeze child", cycleOpts{sig: syscall.SIGTERM})
			tg.cycle("a second time", cycleOpts{duration: "1s", still: stillFor / 2})
			for _, sub := range tg.subs {
				if _, err := os.Stat(sub.dir); err != nil {
					t.Errorf("the workload's cgroup %s is gone: %v", sub, err)
				}
			}
			r := tg.start("thaw")
			e := r.nextEvent()
			if code := r.wait(); code != 0 || e.Event != "nothing_to_thaw" {
				t.Errorf("thaw of a thawed target with a cgfreeze child: event %s, exit %d, want nothing_to_thaw, 0: %s", e.raw, code, r.describe())
			}
			h.requireProgress("after the thaw", tg.w)
			h.checkLeftovers()
		})
	}
}

// TestWorkloadFrozeOwnChild: the workload froze its own (empty) child
// named cgfreeze itself. `cgfreeze thaw` does not undo that freeze
// (nothing_to_thaw), a freeze of the target is not refused by it, and its
// thaw leaves the child frozen, as the workload wants it.
func TestWorkloadFrozeOwnChild(t *testing.T) {
	for _, k := range allKinds {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			own := h.child(tg.cg, "cgfreeze")
			h.foreign[own.dir] = true
			freezeOwn := func(on bool) {
				t.Helper()
				file, value := "cgroup.freeze", map[bool]string{true: "1", false: "0"}[on]
				if k == kindV1 {
					file, value = "freezer.state", map[bool]string{true: "FROZEN", false: "THAWED"}[on]
				}
				if err := own.write(file, value); err != nil {
					t.Fatal(err)
				}
			}
			requireOwnFrozen := func(what string) {
				t.Helper()
				var v string
				var err error
				if k == kindV1 {
					v, err = own.read("freezer.self_freezing")
				} else {
					v, err = own.read("cgroup.freeze")
				}
				if err != nil || v != "1" {
					t.Errorf("%s: the workload's own freeze of %s was undone (%q, %v)", what, own, v, err)
				}
			}
			freezeOwn(true)
			defer freezeOwn(false)

			r := tg.start("thaw")
			e := r.nextEvent()
			if code := r.wait(); code != 0 || e.Event != "nothing_to_thaw" {
				t.Errorf("thaw: event %s, exit %d, want nothing_to_thaw, 0: %s", e.raw, code, r.describe())
			}
			requireOwnFrozen("after cgfreeze thaw")

			before := h.snapshot(tg.cg)
			r = tg.start("", "--duration", "300ms")
			r.waitEvent("frozen")
			tg.requireFrozen("with the workload's frozen cgfreeze child")
			h.requireStill("while frozen", tg.cg, stillFor/2, tg.w)
			r.waitEvent("thawed")
			if code := r.wait(); code != 0 {
				t.Errorf("freeze: exit %d, want 0: %s", code, r.describe())
			}
			requireOwnFrozen("after cgfreeze's freeze and thaw")
			h.requireProgress("after the thaw", tg.w)
			h.requireSameCgroups("after the thaw", before, tg.w.pid)
			freezeOwn(false)
			h.checkLeftovers()
		})
	}
}

// TestLegacyChild: the fixed-name child that a cgfreeze before issue 9
// made, left by one that died holding the target. With its mark, it is
// proven cgfreeze's: `cgfreeze thaw` moves its processes back, thaws the
// children frozen in place, and removes it. Without a mark it cannot be
// told from the workload's own cgroup, and is left alone.
func TestLegacyChild(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindSubtree, targetOpts{nested: true})
	before := h.snapshot(tg.cg)
	legacy := h.child(tg.cg, "cgfreeze")
	if err := legacy.write("cgroup.freeze", "1"); err != nil {
		t.Fatal(err)
	}
	const holder = 4242
	m := fmt.Sprintf(`{"holder":%d,"pidns":1,"start":1,"strategy":"subtree","since":"2025-01-02T03:04:05Z","children":["c1","c2"]}`, holder)
	if err := unix.Setxattr(legacy.dir, "trusted.cgfreeze", []byte(m), 0); err != nil {
		t.Fatal(err)
	}
	// Move the target's processes into it, as that cgfreeze did; a
	// short-lived one may exit meanwhile.
	deadline := time.Now().Add(exitDeadline)
	for {
		pids, err := tg.cg.procs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if err := legacy.write("cgroup.procs", strconv.Itoa(pid)); err != nil && !errors.Is(err, unix.ESRCH) {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v stay in %s", pids, tg.cg)
		}
	}
	for _, sub := range tg.subs[:2] {
		if err := sub.write("cgroup.freeze", "1"); err != nil {
			t.Fatal(err)
		}
	}
	// A write of cgroup.freeze returns before the kernel has every task
	// frozen: the state is the older cgfreeze's once each says frozen 1.
	for _, c := range []*cgroup{legacy, tg.subs[0], tg.subs[1]} {
		waitUntil(t, c.String()+" says frozen 1 after its freeze was written", setupFrozenWait, func() bool {
			v, err := c.frozen()
			return err == nil && v == "1"
		})
	}
	h.requireStill("left by an older cgfreeze", tg.cg, stillFor/2, tg.w)
	tg.requireStatus("status of the legacy leftover", "frozen", "cgfreeze", holder)

	r := tg.start("thaw")
	e := r.nextEvent()
	if code := r.wait(); code != 0 || e.Event != "recovered" || e.Holder != holder {
		t.Fatalf("thaw of a marked legacy child: event %s, exit %d, want recovered (holder %d): %s", e.raw, code, holder, r.describe())
	}
	if _, err := os.Stat(legacy.dir); err == nil {
		t.Errorf("the marked legacy child %s is still there", legacy)
	}
	h.requireProgress("after the thaw", tg.w)
	h.requireSameCgroups("after the thaw", before, tg.w.pid)
	h.checkLeftovers()

	// The same child without a mark: the workload's, left alone by thaw
	// and by a freeze and its thaw.
	legacy = h.child(tg.cg, "cgfreeze")
	h.foreign[legacy.dir] = true
	worker := h.startWorkload(legacy, workloadOpts{})
	r = tg.start("thaw")
	if e := r.nextEvent(); r.wait() != 0 || e.Event != "nothing_to_thaw" {
		t.Errorf("thaw with an unmarked cgfreeze child: event %s, want nothing_to_thaw: %s", e.raw, r.describe())
	}
	if pids, err := legacy.procs(); err != nil || !slices.Contains(pids, worker.pid) {
		t.Errorf("the unmarked child's worker left it: %v (%v)", pids, err)
	}
	tg.cycle("with an unmarked cgfreeze child", cycleOpts{duration: "1s", still: stillFor / 2})
	if pids, err := legacy.procs(); err != nil || !slices.Contains(pids, worker.pid) {
		t.Errorf("after a cycle the unmarked child's worker left it: %v (%v)", pids, err)
	}
}

// TestSubtreeThreadedChild: a threaded child makes the target "domain
// threaded", whose processes cannot move into a domain child: the subtree
// path is impossible and the freeze is refused (exit 4) with the reason,
// nothing changed. docs/troubleshooting.md says what would freeze it.
func TestSubtreeThreadedChild(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindSubtree, targetOpts{})
	th := h.child(tg.cg, "t")
	if err := th.write("cgroup.type", "threaded"); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot(tg.cg)
	r := tg.start("")
	e := r.requireRefusal(exitUnsafeTarget)
	for _, want := range []string{`"domain threaded"`, "threaded child"} {
		if !strings.Contains(e.Error, want) {
			t.Errorf("refusal %q lacks %q", e.Error, want)
		}
	}
	h.requireProgress("after the refusal", tg.w)
	h.requireSameCgroups("after the refusal", before, tg.w.pid)
	h.checkLeftovers()
}

// TestSubtreeMkdirRefused is issue 9's case 9 for the child cgroup: the
// target has reached cgroup.max.descendants (a limit its owner set), so the
// kernel refuses the child (EAGAIN). That is a refusal (exit 4) that says
// so, not exit 1, and nothing is left: not the intent mark either.
func TestSubtreeMkdirRefused(t *testing.T) {
	for _, limit := range []string{"cgroup.max.descendants", "cgroup.max.depth"} {
		t.Run(limit, func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(kindSubtree, targetOpts{})
			if err := tg.cg.write(limit, "0"); err != nil {
				t.Fatal(err)
			}
			before := h.snapshot(tg.cg)
			r := tg.start("")
			e := r.requireRefusal(exitUnsafeTarget)
			for _, want := range []string{"refused to create the cgroup", "cgroup.max.descendants or cgroup.max.depth"} {
				if !strings.Contains(e.Error, want) {
					t.Errorf("refusal %q lacks %q", e.Error, want)
				}
			}
			h.requireProgress("after the refusal", tg.w)
			h.requireSameCgroups("after the refusal", before, tg.w.pid)
			if err := tg.cg.write(limit, "max"); err != nil {
				t.Fatal(err)
			}
			h.checkLeftovers()
		})
	}
}

// TestSubtreeChildChurn is case 9's other half: a workload that keeps
// creating and removing child cgroups while cgfreeze freezes. A child
// that vanishes between the listing and the write is no error: every
// freeze succeeds (it failed with exit 1 in 5 of 40 rounds), and every
// thaw restores the target.
func TestSubtreeChildChurn(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindSubtree, targetOpts{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			dir := tg.cg.sub("churn" + strconv.Itoa(i%4)).dir
			_ = os.Mkdir(dir, 0o755)
			_ = os.Remove(dir)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()
	const rounds = 15
	for i := range rounds {
		r := tg.start("", "--duration", "50ms")
		var events []string
		for {
			e, ok, timedOut := r.next(exitDeadline)
			if !ok || timedOut {
				break
			}
			events = append(events, e.Event)
		}
		if code := r.wait(); code != 0 {
			t.Errorf("round %d: exit %d (events %v): %s", i, code, events, r.describe())
		}
	}
	close(stop)
	<-done
	time.Sleep(10 * time.Millisecond)
	h.requireProgress("after the churn", tg.w)
	h.checkLeftovers()
}
