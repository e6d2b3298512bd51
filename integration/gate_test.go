package integration

import (
	"os"
	"testing"
	"time"
)

// TestStartGate: with --start-timeout a caller that never writes on stdin
// (kubectl-freeze died between creating the agent and attaching to it)
// gets no freeze: "waiting", the target keeps running, then "not_started"
// (start_timeout) and exit 17 after the timeout, nothing changed. A caller
// that writes its first word gets the freeze.
func TestStartGate(t *testing.T) {
	const startTimeout = 1500 * time.Millisecond
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k)+"/never", func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			started := time.Now()
			r := h.startCgfreezeStdin("cgfreeze --start-timeout, silent caller",
				tg.argv("", "--lease", "stdin", "--start-timeout", startTimeout.String()), pr)
			_ = pr.Close()
			tg.requireBase(r.waitEvent("waiting"))
			h.requireProgress("while the agent waits for its caller", tg.w)
			e := r.waitEvent("not_started")
			took := time.Since(started)
			if e.Reason != "start_timeout" {
				t.Errorf("not_started event %s: want reason start_timeout", e.raw)
			}
			if code := r.wait(); code != 17 {
				t.Errorf("exit code %d, want 17: %s", code, r.describe())
			}
			if took < startTimeout || took > startTimeout+5*time.Second {
				t.Errorf("the agent ended %v after its start, want about its start timeout %v", took, startTimeout)
			}
			t.Logf("ended by itself %v after its start (start timeout %v)", took.Round(time.Millisecond), startTimeout)
			h.requireProgress("after the agent ended", tg.w)
			h.requireSameCgroups("after the agent ended", before, tg.w.pid)
			h.checkLeftovers()
		})
		t.Run(string(k)+"/started", func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			r := h.startCgfreezeStdin("cgfreeze --start-timeout, caller says start",
				tg.argv("", "--lease", "stdin", "--start-timeout", "30s"), pr)
			_ = pr.Close()
			r.waitEvent("waiting")
			h.requireProgress("before the first word", tg.w)
			if _, err := pw.WriteString("start\n"); err != nil {
				t.Fatal(err)
			}
			r.waitEvent("frozen")
			tg.requireFrozen("after the first word")
			h.requireStill("after the first word", tg.cg, stillFor, tg.w)
			_ = pw.Close()
			if e := r.waitEvent("thawed"); e.Reason != "stdin" {
				t.Errorf("thawed event %s: want reason stdin", e.raw)
			}
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0: %s", code, r.describe())
			}
			h.requireProgress("after the thaw", tg.w)
			h.requireSameCgroups("after the thaw", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestHeartbeat: with --heartbeat the hold lasts while the caller writes
// more often than the bound, and ends (thawed, reason heartbeat, exit 0)
// once its lines stop though stdin stays open: a connection lost without a
// reset.
func TestHeartbeat(t *testing.T) {
	const bound = time.Second
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close() // open until the end: only the silence ends the hold
			r := h.startCgfreezeStdin("cgfreeze --heartbeat",
				tg.argv("", "--lease", "stdin", "--start-timeout", "30s", "--heartbeat", bound.String()), pr)
			_ = pr.Close()
			r.waitEvent("waiting")
			if _, err := pw.WriteString("start\n"); err != nil {
				t.Fatal(err)
			}
			r.waitEvent("frozen")
			for end := time.Now().Add(3 * bound); time.Now().Before(end); {
				if _, err := pw.WriteString("beat\n"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(bound / 4)
			}
			tg.requireFrozen("after 3 bounds of heartbeats")
			last := time.Now()
			if _, err := pw.WriteString("beat\n"); err != nil {
				t.Fatal(err)
			}
			e := r.waitEvent("thawed")
			took := time.Since(last)
			if e.Reason != "heartbeat" {
				t.Errorf("thawed event %s: want reason heartbeat", e.raw)
			}
			if took < bound-50*time.Millisecond {
				t.Errorf("thawed %v after the last heartbeat, before the bound %v", took, bound)
			}
			t.Logf("thawed %v after the last heartbeat (bound %v)", took.Round(time.Millisecond), bound)
			if code := r.wait(); code != 0 {
				t.Errorf("exit code %d, want 0: %s", code, r.describe())
			}
			h.requireProgress("after the heartbeat stopped", tg.w)
			h.requireSameCgroups("after the heartbeat stopped", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}
