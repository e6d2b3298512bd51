package agent

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
)

// The start gate and the heartbeat, two refinements of --lease stdin for a
// caller on the far side of a network (kubectl-freeze attached to an
// ephemeral container):
//
//   - The gate (HolderConfig.StartTimeout): the holder resolves the target,
//     says "waiting", and freezes only once its caller wrote something on
//     stdin. A caller that died between creating the agent and attaching to
//     it never writes: the agent ends by itself after the start timeout
//     with nothing changed (ExitNotStarted). An ephemeral container cannot
//     be removed; it must not idle, or freeze, for ever.
//   - The heartbeat (HolderConfig.Heartbeat): once started, the hold ends
//     (thawed, reason heartbeat) when stdin stays silent for longer than the
//     bound. A connection that dies without a reset (a suspended laptop, a
//     dropped network) does not close stdin for hours; silence is what the
//     agent can see.
//
// Any byte counts as the first word and as a heartbeat: kubectl-freeze
// writes "start\n", then "beat\n" every few seconds; a person at a terminal
// presses Enter.

// stdinWatch reads stdin for the gate, the heartbeat and the EOF lease.
type stdinWatch struct {
	started chan struct{} // closed at the first byte
	beats   chan struct{} // a byte arrived (one pending signal at most)
	eof     chan struct{} // closed at EOF or a read error
}

// watchStdinWords reads stdin until EOF (or an error), which it sends as
// the stdin lease on ended, like watchStdin; besides, it tells the gate and
// the heartbeat when bytes arrive.
func watchStdinWords(stdin io.Reader, ended chan<- string) *stdinWatch {
	w := &stdinWatch{started: make(chan struct{}), beats: make(chan struct{}, 1), eof: make(chan struct{})}
	go func() {
		buf := make([]byte, 512)
		first := true
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if first {
					first = false
					close(w.started)
				}
				select {
				case w.beats <- struct{}{}:
				default:
				}
			}
			if err != nil {
				close(w.eof)
				ended <- LeaseStdin
				return
			}
		}
	}()
	return w
}

// awaitStart is the gate: it emits "waiting" and waits for the caller's
// first word. ok is false when the hold must not start: then code is the
// exit code and the not_started event was emitted (except when the
// supervisor is gone: the holder ends with its own code, as before any
// freeze).
func awaitStart(ctx context.Context, cfg HolderConfig, w *stdinWatch, t *freezer.Target) (code int, ok bool) {
	e := Base(t)
	e.Event = contract.EventWaiting
	cfg.Events.Emit(e)
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	reason := contract.ReasonStartTimeout
	select {
	case <-w.started:
		// A word that came with an end (stdin closed right after it, a
		// signal): the end wins, nothing is frozen for nothing.
		select {
		case <-w.eof:
			reason = contract.ReasonStdin
		default:
			if ctx.Err() == nil {
				return 0, true
			}
			reason = endReason(ctx)
		}
	case <-timer.C:
	case <-w.eof:
		// Leases end a hold only once frozen; before the word, EOF
		// means the caller is gone: nothing to start.
		reason = contract.ReasonStdin
	case <-ctx.Done():
		reason = endReason(ctx)
	}
	var why *ending
	if errors.As(context.Cause(ctx), &why) && why.code == contract.ExitSupervisorGone {
		return contract.ExitSupervisorGone, false
	}
	cfg.Log.Warn().Str("reason", reason).Dur("start_timeout", cfg.StartTimeout).Msg("the caller never said to start: nothing was changed")
	code = contract.ExitNotStarted
	e = Base(t)
	e.Event, e.Reason, e.ExitCode = contract.EventNotStarted, reason, &code
	cfg.Events.Emit(e)
	return code, false
}

// endReason is the reason of the ending that cancelled ctx.
func endReason(ctx context.Context) string {
	var why *ending
	if errors.As(context.Cause(ctx), &why) {
		return why.reason
	}
	return "unknown"
}

// watchHeartbeat sends the lease heartbeat on ended (which ends the hold
// once frozen, as the stdin lease does) when no byte arrives on stdin for
// longer than bound, until ctx is done.
func watchHeartbeat(ctx context.Context, ended chan<- string, w *stdinWatch, bound time.Duration) {
	timer := time.NewTimer(bound)
	defer timer.Stop()
	for {
		select {
		case <-w.beats:
			timer.Reset(bound)
		case <-timer.C:
			select {
			case ended <- contract.ReasonHeartbeat:
			default: // another lease ended already
			}
			return
		case <-ctx.Done():
			return
		}
	}
}
