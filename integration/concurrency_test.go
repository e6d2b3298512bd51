package integration

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
)

// TestConcurrentAgents: two agents started at the same instant against one
// target: exactly one freezes, the other is refused (exit 8) naming the
// holder, and no PID is moved twice. Then the freeze ends normally.
func TestConcurrentAgents(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			before := h.snapshot(tg.cg)
			for round := 0; round < 5; round++ {
				a := tg.start("", "--duration", "1s")
				b := tg.start("", "--duration", "1s")
				var holder, refused *run
				var refusal event
				// Each agent's first event says what it did.
				aEvents, bEvents := a.events, b.events
				for holder == nil || refused == nil {
					select {
					case e, ok := <-aEvents:
						if !ok {
							t.Fatalf("round %d: agent A ended without an event: %s", round, a.describe())
						}
						a.seen = append(a.seen, e.raw)
						aEvents = nil
						holder, refused, refusal = classifyAgent(t, a, b, e, holder, refused, refusal)
					case e, ok := <-bEvents:
						if !ok {
							t.Fatalf("round %d: agent B ended without an event: %s", round, b.describe())
						}
						b.seen = append(b.seen, e.raw)
						bEvents = nil
						holder, refused, refusal = classifyAgent(t, b, a, e, holder, refused, refusal)
					case <-time.After(exitDeadline):
						t.Fatalf("round %d: no frozen and error events:\n%s\n%s", round, a.describe(), b.describe())
					}
				}
				if refusal.ExitCode == nil || *refusal.ExitCode != exitAlreadyFrozen {
					t.Errorf("round %d: refusal %s: want exit_code %d", round, refusal.raw, exitAlreadyFrozen)
				}
				if !strings.Contains(refusal.Error, "held by a running cgfreeze") {
					t.Errorf("round %d: refusal %q does not say a running cgfreeze holds the target", round, refusal.Error)
				}
				tg.requireFrozen(fmt.Sprintf("round %d: frozen by one of two agents", round))
				if code := refused.wait(); code != exitAlreadyFrozen {
					t.Errorf("round %d: refused agent exit %d, want %d", round, code, exitAlreadyFrozen)
				}
				holder.waitOne("holding")
				holder.waitEvent("thawed")
				if code := holder.wait(); code != 0 {
					t.Errorf("round %d: holder exit %d, want 0: %s", round, code, holder.describe())
				}
				h.requireProgress(fmt.Sprintf("round %d: after the thaw", round), tg.w)
				h.requireSameCgroups(fmt.Sprintf("round %d: after the thaw", round), before, tg.w.pid)
				h.checkLeftovers()
			}
		})
	}
}

// classifyAgent files one event of agent x (whose rival is y).
func classifyAgent(t *testing.T, x, y *run, e event, holder, refused *run, refusal event) (*run, *run, event) {
	t.Helper()
	switch e.Event {
	case "frozen":
		if holder != nil {
			t.Fatalf("both agents froze the target: %s\n%s", x.describe(), y.describe())
		}
		holder = x
	case "error":
		if refused != nil {
			t.Fatalf("both agents were refused: %s\n%s", x.describe(), y.describe())
		}
		refused, refusal = x, e
	default:
		t.Fatalf("unexpected event %s: %s", e.raw, x.describe())
	}
	return holder, refused, refusal
}

// TestAgentWhileHeld: an agent started while another holds is refused with
// the holder's PID, `status` says held, and the holder still thaws.
func TestAgentWhileHeld(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			tg.cycle("held", cycleOpts{sig: syscall.SIGTERM, still: stillFor / 2, whileFrozen: func(r *run) {
				holder := tg.holderPid(r)
				e := tg.start("").requireRefusal(exitAlreadyFrozen)
				if want := fmt.Sprintf("held by a running cgfreeze (PID %d", holder); !strings.Contains(e.Error, want) {
					t.Errorf("refusal %q does not contain %q", e.Error, want)
				}
				rs := tg.start("status")
				st := rs.waitEvent("status")
				if st.Held == nil || !*st.Held || st.FrozenBy != "cgfreeze" || st.Holder != holder {
					t.Errorf("status while held: %s, want held true, frozen_by cgfreeze, holder %d", st.raw, holder)
				}
				if code := rs.wait(); code != 0 {
					t.Errorf("status exit %d", code)
				}
				if code := tg.statusCode(); code != contract.StatusHeld {
					t.Errorf("status --exit-code while held: exit %d, want %d", code, contract.StatusHeld)
				}
				tg.requireFrozen("after the refused agent")
			}})
		})
	}
}
