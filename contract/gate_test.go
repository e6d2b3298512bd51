package contract

import (
	"strings"
	"testing"
)

// TestGateDocumented: the gate's events, reasons and flags are in
// docs/usage.md.
func TestGateDocumented(t *testing.T) {
	doc := usageDoc(t)
	for _, name := range []string{EventWaiting, EventNotStarted, ReasonStartTimeout, ReasonHeartbeat, "--start-timeout", "--heartbeat"} {
		if !strings.Contains(doc, "`"+name) {
			t.Errorf("%q is not in docs/usage.md", name)
		}
	}
}
