package integration

import (
	"encoding/json"
	"time"
)

// handoverSettle is how long a test waits after the mark names the holder
// before it acts on a hold that must have been handed over: the supervisor
// rewrites the mark just before it sends the lock (freezer.Frozen.HandOver),
// a few microseconds.
const handoverSettle = 20 * time.Millisecond

// waitHandedOver waits until the supervisor of r has handed the hold over
// to its holder (the fast path, agent.FreezeFirst): the target's mark
// names the holder process. Before that, the supervisor holds the freeze,
// and a kill of either takes the paths of the hand-over's window (the
// fault points supervisor:handover, holder:adopt in TestFaults).
func (tg *target) waitHandedOver(r *run) {
	h := tg.h
	h.t.Helper()
	holder := tg.holderPid(r)
	deadline := time.Now().Add(exitDeadline)
	for {
		if v, err := getxattr(tg.cg.dir, "trusted.cgfreeze"); err == nil {
			var m struct {
				Holder int `json:"holder"`
			}
			if json.Unmarshal([]byte(v), &m) == nil && m.Holder == holder {
				time.Sleep(handoverSettle)
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the hold was not handed over to the holder (PID %d) within %v: %s", holder, exitDeadline, r.describe())
		}
		time.Sleep(time.Millisecond)
	}
}
