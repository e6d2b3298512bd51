package integration

import (
	"fmt"
	"syscall"
	"testing"
)

// TestFreeze freezes and thaws a counting workload once per layout: v1
// (detected on this hybrid host), v2 direct (--cgroup-version 2), a pure-v2
// host (cgroup2 at /sys/fs/cgroup, detected) and the kubectl debug layout
// (subtree). While it holds, `cgfreeze status` must see the freeze.
func TestFreeze(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindPureV2, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			tg.cycle("freeze", cycleOpts{sig: syscall.SIGTERM, whileFrozen: func(r *run) {
				tg.requireStatus("status while frozen", "frozen", "cgfreeze", tg.holderPid(r))
			}})
			tg.requireStatus("status after the thaw", "thawed", "", 0)
			h.checkLeftovers()
		})
	}
}

// TestFreezeKeepsHierarchyOptions: with nsdelegate on (as systemd mounts
// cgroup2), freezing from the initial cgroup namespace must leave it on: a
// cgroup2 mount made there without the options in force would clear it for
// the whole machine. checkLeftovers compares the options.
func TestFreezeKeepsHierarchyOptions(t *testing.T) {
	for _, k := range []kind{kindDirect, kindPureV2} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nsdelegate: true})
			tg.cycle("freeze with nsdelegate on", cycleOpts{sig: syscall.SIGTERM, whileFrozen: func(r *run) {
				tg.requireStatus("status while frozen", "frozen", "cgfreeze", tg.holderPid(r))
			}})
			r := tg.start("thaw")
			r.waitEvent("nothing_to_thaw")
			if code := r.wait(); code != 0 {
				t.Errorf("thaw exit code %d, want 0: %s", code, r.describe())
			}
			h.checkLeftovers()
		})
	}
}

// TestFreezeForking freezes a workload that forks all the time: the freeze
// must catch every new process (v1 FREEZING that does not settle; subtree
// processes forked during the migration).
func TestFreezeForking(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork"})
			for i := range 3 {
				tg.cycle(fmt.Sprintf("cycle %d", i+1), cycleOpts{sig: syscall.SIGINT})
			}
		})
	}
}

// TestFreezeNested freezes a target with processes in child cgroups
// (c1, c2, c1/g1): they are frozen too, and stay in their cgroups.
func TestFreezeNested(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{nested: true})
			tg.cycle("nested", cycleOpts{sig: syscall.SIGINT})
		})
	}
}

// TestFreezeNestedForking combines both: forking in the target, counting
// workers in its children.
func TestFreezeNestedForking(t *testing.T) {
	for _, k := range []kind{kindV1, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			tg.cycle("nested and forking", cycleOpts{sig: syscall.SIGINT})
		})
	}
}

// TestFreezeCycles freezes and thaws the same target 20 times in a row: the
// withdrawn feature's child cgroup was never removed, so its second run
// failed.
func TestFreezeCycles(t *testing.T) {
	for _, k := range []kind{kindV1, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			for i := range 20 {
				tg.cycle(fmt.Sprintf("cycle %d", i+1), cycleOpts{sig: syscall.SIGINT})
				if t.Failed() {
					t.Fatalf("stopped after cycle %d", i+1)
				}
			}
		})
	}
}

// TestSignals: SIGINT, SIGTERM and SIGHUP each end the hold, with a thaw and
// exit 0.
func TestSignals(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
			t.Run(fmt.Sprintf("%s/%s", k, sigName(sig)), func(t *testing.T) {
				h := newHarness(t)
				tg := h.newTarget(k, targetOpts{})
				tg.cycle(sigName(sig), cycleOpts{sig: sig, still: stillFor / 2})
			})
		}
	}
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// TestDuration: --duration 500ms thaws by itself.
func TestDuration(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			thawed := tg.cycle("--duration", cycleOpts{duration: "500ms", still: stillFor / 2})
			if thawed.HeldMS != nil && (*thawed.HeldMS < 450 || *thawed.HeldMS > 5000) {
				t.Errorf("thawed event %s: held_ms should be about 500 with --duration 500ms", thawed.raw)
			}
		})
	}
}

// TestSecondSignalDuringThaw: a second signal right behind the first must not
// cut the thaw short.
func TestSecondSignalDuringThaw(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			tg.cycle("two SIGINTs", cycleOpts{sig: syscall.SIGINT, signalTwice: true, still: stillFor / 2})
		})
	}
}
