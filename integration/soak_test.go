package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
)

// soakCycles is the number of freeze/thaw cycles of the soak tests.
const soakCycles = 500

// fdCount counts the open file descriptors of process pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// steadyFDCount is the fewest open file descriptors of a running shell
// workload over a few reads: a shell holds a redirection's descriptor open
// for a moment while it writes its counter, so one read may count it.
func steadyFDCount(t *testing.T, pid int) int {
	t.Helper()
	n := fdCount(t, pid)
	for range 20 {
		time.Sleep(time.Millisecond)
		n = min(n, fdCount(t, pid))
	}
	return n
}

func threadCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func mountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSoak: 500 freeze/thaw cycles of the binary on one live, forking
// target: every cycle freezes and thaws; afterwards the workload's counter
// still counts, every process is in its cgroup, and no cgroup, mount,
// process or file descriptor is left behind.
func TestSoak(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			before := h.snapshot(tg.cg)
			fdsTest, fdsTarget, mounts := fdCount(t, os.Getpid()), steadyFDCount(t, tg.w.pid), mountinfo(t)
			counters, err := tg.w.values()
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for i := 0; i < soakCycles; i++ {
				r := tg.start("", "--duration", "1ms")
				r.waitEvent("frozen")
				r.waitEvent("thawed")
				if code := r.wait(); code != 0 {
					t.Fatalf("cycle %d: exit %d: %s", i, code, r.describe())
				}
				h.runs = h.runs[:0] // ended; the cleanup need not look at them
			}
			t.Logf("%d cycles in %v (%v each)", soakCycles, time.Since(start).Round(time.Millisecond), (time.Since(start) / soakCycles).Round(time.Microsecond))
			h.requireProgress("after the soak", tg.w)
			after, err := tg.w.values()
			if err != nil {
				t.Fatal(err)
			}
			for i := range after {
				if after[i] <= counters[i] {
					t.Errorf("counter %s went from %d to %d", tg.w.counters[i], counters[i], after[i])
				}
			}
			h.requireSameCgroups("after the soak", before, tg.w.pid)
			if n := fdCount(t, os.Getpid()); n > fdsTest {
				t.Errorf("the test process has %d file descriptors after the soak, %d before", n, fdsTest)
			}
			if n := steadyFDCount(t, tg.w.pid); n != fdsTarget {
				t.Errorf("the target's main process has %d file descriptors after the soak, %d before", n, fdsTarget)
			}
			if m := mountinfo(t); m != mounts {
				t.Errorf("the mount table changed during the soak:\nbefore:\n%s\nafter:\n%s", mounts, m)
			}
			h.checkLeftovers()
		})
	}
}

// TestLibrarySoak: the freezer package used as a library by a long-lived
// process: one Target, 500 Freeze/Thaw cycles, then 100 Resolve/Close, with
// no file descriptor, thread, cgroup or mount left behind.
func TestLibrarySoak(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true, noPdeathsig: true})
			before := h.snapshot(tg.cg)
			version := 2
			if k == kindV1 {
				version = 1
			}
			opts := freezer.Options{PID: tg.w.pid, Version: version}
			fds, threads, mounts := fdCount(t, os.Getpid()), threadCount(t), mountinfo(t)
			target, err := freezer.Resolve(opts)
			if err != nil {
				t.Fatal(err)
			}
			if target.Path != tg.cg.rel {
				t.Fatalf("resolved %s, want %s", target.Path, tg.cg.rel)
			}
			for i := 0; i < soakCycles; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				frozen, err := freezer.Freeze(ctx, target)
				if err != nil {
					cancel()
					t.Fatalf("cycle %d: %v", i, err)
				}
				// Every cycle: the whole tree must say frozen when
				// Freeze returns.
				tg.requireFrozen(fmt.Sprintf("cycle %d", i))
				err = frozen.Thaw(ctx)
				cancel()
				if err != nil {
					t.Fatalf("cycle %d: thaw: %v", i, err)
				}
			}
			if err := target.Close(); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 100; i++ {
				target, err := freezer.Resolve(opts)
				if err != nil {
					t.Fatalf("resolve %d: %v", i, err)
				}
				if err := target.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if n := fdCount(t, os.Getpid()); n > fds {
				t.Errorf("%d file descriptors after the soak, %d before", n, fds)
			}
			// Each Target's thread ends with it (it stays locked and the
			// runtime kills it); give the runtime a moment.
			deadline := time.Now().Add(2 * time.Second)
			for threadCount(t) > threads+2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := threadCount(t); n > threads+2 {
				t.Errorf("%d threads after the soak, %d before", n, threads)
			}
			if m := mountinfo(t); m != mounts {
				t.Errorf("the mount table changed:\n%s", strings.TrimSpace(m))
			}
			h.requireProgress("after the library soak", tg.w)
			h.requireSameCgroups("after the library soak", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}
