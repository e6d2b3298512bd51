package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/rs/zerolog"
)

// lockedBuffer is an events sink that the test reads while the writer may
// still write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// gateRig runs awaitStart as Hold does: a context ended by the leases, a
// stdin pipe the test writes, and a JSON event writer.
type gateRig struct {
	ctx    context.Context
	end    context.CancelCauseFunc
	stdin  *io.PipeWriter
	words  *stdinWatch
	leases chan string
	out    *lockedBuffer
	cfg    HolderConfig
}

func newGateRig(t *testing.T, startTimeout time.Duration) *gateRig {
	t.Helper()
	r := &gateRig{out: &lockedBuffer{}}
	r.ctx, r.end = context.WithCancelCause(context.Background())
	t.Cleanup(func() { r.end(nil) })
	pr, pw := io.Pipe()
	r.stdin = pw
	t.Cleanup(func() { _ = pw.Close() })
	r.leases = make(chan string, 1)
	r.words = watchStdinWords(pr, r.leases)
	go func() {
		select {
		case l := <-r.leases:
			r.end(&ending{reason: l})
		case <-r.ctx.Done():
		}
	}()
	r.cfg = HolderConfig{StartTimeout: startTimeout, Log: zerolog.Nop(), Events: NewWriter(r.out, true)}
	return r
}

// events closes the writer and returns the events written.
func (r *gateRig) events(t *testing.T) []contract.Event {
	t.Helper()
	r.cfg.Events.Close(time.Second)
	r.out.mu.Lock()
	defer r.out.mu.Unlock()
	var out []contract.Event
	for _, line := range strings.Split(strings.TrimSpace(r.out.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var e contract.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

var gateTarget = &freezer.Target{PID: 7, Path: "/pod/app", Version: 2, Strategy: "subtree"}

func TestGateStartTimeout(t *testing.T) {
	r := newGateRig(t, 50*time.Millisecond)
	start := time.Now()
	code, ok := awaitStart(r.ctx, r.cfg, r.words, gateTarget)
	took := time.Since(start)
	if ok || code != contract.ExitNotStarted {
		t.Fatalf("awaitStart with a silent stdin = %d, %v; want %d, false", code, ok, contract.ExitNotStarted)
	}
	if took < 50*time.Millisecond || took > 2*time.Second {
		t.Errorf("the gate gave up after %v, want the start timeout of 50ms", took)
	}
	ev := r.events(t)
	if len(ev) != 2 || ev[0].Event != contract.EventWaiting || ev[1].Event != contract.EventNotStarted ||
		ev[1].Reason != contract.ReasonStartTimeout || ev[1].ExitCode == nil || *ev[1].ExitCode != contract.ExitNotStarted {
		t.Fatalf("events %+v, want waiting then not_started (start_timeout, exit 17)", ev)
	}
	if ev[0].PID != 7 || ev[0].Cgroup != "/pod/app" {
		t.Errorf("waiting event %+v does not name the target", ev[0])
	}
}

func TestGateOpensOnFirstWord(t *testing.T) {
	r := newGateRig(t, 10*time.Second)
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = r.stdin.Write([]byte("start\n"))
	}()
	code, ok := awaitStart(r.ctx, r.cfg, r.words, gateTarget)
	if !ok || code != 0 {
		t.Fatalf("awaitStart after a word = %d, %v; want 0, true", code, ok)
	}
	if ev := r.events(t); len(ev) != 1 || ev[0].Event != contract.EventWaiting {
		t.Errorf("events %+v, want only waiting", ev)
	}
}

func TestGateStdinClosedFirst(t *testing.T) {
	r := newGateRig(t, 10*time.Second)
	_ = r.stdin.Close()
	code, ok := awaitStart(r.ctx, r.cfg, r.words, gateTarget)
	if ok || code != contract.ExitNotStarted {
		t.Fatalf("awaitStart after EOF = %d, %v; want %d, false", code, ok, contract.ExitNotStarted)
	}
	ev := r.events(t)
	if len(ev) != 2 || ev[1].Event != contract.EventNotStarted || ev[1].Reason != contract.ReasonStdin {
		t.Errorf("events %+v, want waiting then not_started (stdin)", ev)
	}
}

// EOF alone (leases end a hold only once frozen: the hold's context is not
// ended by it) closes the gate too.
func TestGateEOFWithoutEnd(t *testing.T) {
	r := newGateRig(t, 10*time.Second)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	_ = r.stdin.Close()
	code, ok := awaitStart(ctx, r.cfg, r.words, gateTarget)
	if ok || code != contract.ExitNotStarted {
		t.Fatalf("awaitStart after EOF = %d, %v; want %d, false", code, ok, contract.ExitNotStarted)
	}
	ev := r.events(t)
	if len(ev) != 2 || ev[1].Reason != contract.ReasonStdin {
		t.Errorf("events %+v, want waiting then not_started (stdin)", ev)
	}
}

// A supervisor that died before the word: the holder ends with its own code
// (16), as before any freeze, and says nothing more.
func TestGateSupervisorGone(t *testing.T) {
	r := newGateRig(t, 10*time.Second)
	r.end(&ending{reason: contract.ReasonSupervisorGone, code: contract.ExitSupervisorGone})
	code, ok := awaitStart(r.ctx, r.cfg, r.words, gateTarget)
	if ok || code != contract.ExitSupervisorGone {
		t.Fatalf("awaitStart with the supervisor gone = %d, %v; want %d, false", code, ok, contract.ExitSupervisorGone)
	}
}

// The word and an end at once (stdin closed right after "start"): the end
// wins, nothing is frozen for nothing.
func TestGateWordThenEnd(t *testing.T) {
	r := newGateRig(t, 10*time.Second)
	_, _ = r.stdin.Write([]byte("start\n"))
	<-r.words.started
	_ = r.stdin.Close()
	<-r.ctx.Done()
	if code, ok := awaitStart(r.ctx, r.cfg, r.words, gateTarget); ok || code != contract.ExitNotStarted {
		t.Fatalf("awaitStart with a word and EOF = %d, %v; want %d, false", code, ok, contract.ExitNotStarted)
	}
}

// The heartbeat keeps the hold while bytes come more often than the bound,
// and ends it (reason heartbeat) once they stop.
func TestHeartbeat(t *testing.T) {
	const bound = 150 * time.Millisecond
	r := newGateRig(t, 0)
	go watchHeartbeat(r.ctx, r.leases, r.words, bound)
	beating := time.Now()
	for time.Since(beating) < 4*bound {
		if _, err := r.stdin.Write([]byte("beat\n")); err != nil {
			t.Fatal(err)
		}
		if r.ctx.Err() != nil {
			t.Fatalf("the hold ended after %v of heartbeats every %v (bound %v): %v", time.Since(beating), bound/3, bound, context.Cause(r.ctx))
		}
		time.Sleep(bound / 3)
	}
	stopped := time.Now()
	select {
	case <-r.ctx.Done():
	case <-time.After(10 * bound):
		t.Fatalf("the hold did not end %v after the heartbeats stopped (bound %v)", 10*bound, bound)
	}
	took := time.Since(stopped)
	if got := endReason(r.ctx); got != contract.ReasonHeartbeat {
		t.Errorf("the hold ended with reason %q, want %q", got, contract.ReasonHeartbeat)
	}
	if took < bound-bound/3-10*time.Millisecond {
		t.Errorf("the hold ended %v after the last heartbeat, before the bound %v", took, bound)
	}
	t.Logf("ended %v after the heartbeats stopped (bound %v)", took.Round(time.Millisecond), bound)
}
