package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
)

// gateWriter blocks every Write until the gate opens, like a stdout that
// nobody reads.
type gateWriter struct {
	gate chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gateWriter) Write(b []byte) (int, error) {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(b)
}

func (g *gateWriter) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// emitLimit bounds how long Emit may take: it must never wait on output.
const emitLimit = 100 * time.Millisecond

// TestWriterNeverBlocks: with a writer that blocks, Emit returns at once;
// what does not fit the queue is dropped and counted, and reported in an
// output_overflow event once output moves again.
func TestWriterNeverBlocks(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{})}
	w := NewWriter(g, true)
	extra := 10
	start := time.Now()
	// One event is taken by the writer's goroutine, blocked in Write;
	// EventQueue wait in the queue; the rest overflow.
	for i := range EventQueue + 1 + extra {
		n := i
		w.Emit(contract.Event{Event: "tick", Count: &n})
	}
	if d := time.Since(start); d > emitLimit {
		t.Errorf("%d Emits with a blocked output took %v", EventQueue+1+extra, d)
	}
	// The writer's goroutine takes the first event at its own pace:
	// the overflow is extra or extra+1.
	if closed := w.Close(50 * time.Millisecond); closed {
		t.Fatal("Close reports the events written while the output is blocked")
	}
	close(g.gate)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(g.String(), contract.EventOutputOverflow) {
		if time.Now().After(deadline) {
			t.Fatalf("no output_overflow event after the output moved:\n%s", g.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	written := len(lines) - 1
	if !strings.HasPrefix(last, `{"event":"output_overflow",`) {
		t.Fatalf("last line %q, want the output_overflow event", last)
	}
	var overflow contract.Event
	if err := json.Unmarshal([]byte(last), &overflow); err != nil || overflow.Count == nil {
		t.Fatalf("%q: %v", last, err)
	}
	dropped := *overflow.Count
	if written+dropped != EventQueue+1+extra {
		t.Errorf("%d events written and %d reported dropped, want %d in all", written, dropped, EventQueue+1+extra)
	}
	if dropped < extra || dropped > extra+1 {
		t.Errorf("%d reported dropped, want %d or %d", dropped, extra, extra+1)
	}
	select {
	case <-w.Gone():
		t.Error("Gone is closed, but the output was never closed")
	default:
	}
}

// TestWriterOverflowReportedOnce: a second run of output reports only
// what was dropped since the first report.
func TestWriterOverflowReportedOnce(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, true)
	w.dropped.Add(3)
	w.Emit(contract.Event{Event: "frozen", PID: 1})
	w.Emit(contract.Event{Event: "thawed", PID: 1})
	if !w.Close(time.Second) {
		t.Fatal("Close timed out on a buffer")
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e contract.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if e.Event == contract.EventOutputOverflow && (e.Count == nil || *e.Count != 3) {
			t.Errorf("%s: want count 3", line)
		}
		names = append(names, e.Event)
	}
	// The report comes when the queue is empty after a write: after the
	// first event or after the second, depending on the writer's pace.
	if got := strings.Join(names, ","); got != "frozen,output_overflow,thawed" && got != "frozen,thawed,output_overflow" {
		t.Errorf("events %s, want frozen and thawed with one output_overflow", got)
	}
}

// TestWriterStamps: every event gets the time it was emitted (RFC 3339,
// microseconds, UTC) and the schema version.
func TestWriterStamps(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, true)
	before := time.Now()
	w.Emit(contract.Event{Event: "frozen", PID: 1})
	after := time.Now()
	w.Close(time.Second)
	var e contract.Event
	if err := json.Unmarshal(out.Bytes(), &e); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if e.Schema != contract.Schema {
		t.Errorf("schema %d, want %d", e.Schema, contract.Schema)
	}
	at, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil || len(e.Time) != len("2006-01-02T15:04:05.000000Z") {
		t.Fatalf("time %q: %v; want RFC 3339 in UTC with microseconds", e.Time, err)
	}
	if at.Before(before.Truncate(time.Microsecond)) || at.After(after) {
		t.Errorf("time %v, not between %v and %v", at, before, after)
	}
	// Text mode: the time, no schema.
	line := string(Format(e, false))
	if !strings.Contains(line, " time="+e.Time) || strings.Contains(line, "schema") {
		t.Errorf("text %q: want the time and no schema", line)
	}
}

// TestWriterEPIPE: a write to a pipe whose reader is gone closes Gone
// (SIGPIPE is not raised for a descriptor other than 1 and 2); later
// events are dropped.
func TestWriterEPIPE(t *testing.T) {
	r, wf, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	_ = r.Close()
	w := NewWriter(epipeOnly{wf}, true)
	w.Emit(contract.Event{Event: "frozen"})
	select {
	case <-w.Gone():
	case <-time.After(5 * time.Second):
		t.Fatal("Gone not closed after EPIPE")
	}
	if !errors.Is(w.Err(), syscall.EPIPE) {
		t.Errorf("Err() = %v, want EPIPE", w.Err())
	}
	w.Emit(contract.Event{Event: "thawed"})
	if !w.Close(time.Second) {
		t.Error("Close timed out after EPIPE")
	}
}

// epipeOnly hides the *os.File, so that only a write can notice the
// closed reader (not the poll watch).
type epipeOnly struct{ io.Writer }

// TestWriterNoticesClosedReader: with nothing written, a pipe whose reader
// closes is noticed (poll's POLLERR): `cgfreeze | head -c1`.
func TestWriterNoticesClosedReader(t *testing.T) {
	r, wf, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	w := NewWriter(wf, true)
	defer w.Close(time.Second)
	select {
	case <-w.Gone():
		t.Fatal("Gone closed while the reader is open")
	case <-time.After(50 * time.Millisecond):
	}
	closed := time.Now()
	_ = r.Close()
	select {
	case <-w.Gone():
		t.Logf("noticed %v after the reader closed", time.Since(closed))
	case <-time.After(5 * time.Second):
		t.Fatal("Gone not closed after the reader closed")
	}
}

// TestWriterCloseBounded: Close gives up on an output that stays blocked.
func TestWriterCloseBounded(t *testing.T) {
	g := &gateWriter{gate: make(chan struct{})}
	defer close(g.gate)
	w := NewWriter(g, true)
	w.Emit(contract.Event{Event: "thawed"})
	start := time.Now()
	if w.Close(100 * time.Millisecond) {
		t.Error("Close reports a flush on a blocked output")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with a limit of 100ms", d)
	}
	w.Emit(contract.Event{Event: "late"}) // dropped, no panic
}

// TestWriterFlush: Flush returns once what was queued is written; on a
// blocked output it gives up at its limit, or at once when done closes.
func TestWriterFlush(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, true)
	w.Emit(contract.Event{Event: "frozen"})
	if !w.Flush(nil, 5*time.Second) {
		t.Error("Flush on a buffer reports the event not written")
	}
	if !strings.Contains(out.String(), `"event":"frozen"`) {
		t.Errorf("after Flush the output is %q", out.String())
	}
	w.Close(time.Second)

	g := &gateWriter{gate: make(chan struct{})}
	defer close(g.gate)
	w = NewWriter(g, true)
	w.Emit(contract.Event{Event: "frozen"})
	start := time.Now()
	if w.Flush(nil, 50*time.Millisecond) {
		t.Error("Flush on a blocked output reports the event written")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Errorf("Flush with a limit of 50ms returned after %v", d)
	}
	done := make(chan struct{})
	close(done)
	start = time.Now()
	if w.Flush(done, time.Minute) {
		t.Error("Flush on a blocked output reports the event written")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Flush with done closed returned after %v", d)
	}
}
