package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/rs/zerolog"
)

// The holder's side of a freeze: it freezes, holds and thaws, and tells
// its supervisor ("done <code>") once the target is known to be thawed.

// frozenFlushLimit bounds the wait for the frozen event to reach stdout
// before the hold goes on (a blocked stdout costs this much, once).
const frozenFlushLimit = 100 * time.Millisecond

// Errors of the holder's link to its supervisor.
var (
	// ErrSupervisorGone: the supervisor's end of the channel closed: it
	// died (SIGKILL by its caller: exec.CommandContext's cancel, timeout -s
	// KILL). The holder restores the target and ends.
	ErrSupervisorGone = errors.New("the supervisor is gone")
	// ErrAborted: the supervisor gave up before anything changed (it could
	// not resolve the target, and says why itself).
	ErrAborted = errors.New("the supervisor gave up")
)

// Link is the holder's end of the channel to its supervisor.
type Link struct {
	ch       *Channel
	log      zerolog.Logger
	ends     chan string   // leases the supervisor watched that ended
	gone     chan struct{} // closed when the supervisor's end closes
	goneOnce sync.Once
	finished bool
}

// OpenLink returns the link of a holder whose supervisor started it with
// StartHolder (the channel at ChannelFD).
func OpenLink(log zerolog.Logger) (*Link, error) {
	ch, err := InheritedChannel()
	if err != nil {
		return nil, err
	}
	return NewLink(ch, log), nil
}

// NewLink makes a link on one end of a channel.
func NewLink(ch *Channel, log zerolog.Logger) *Link {
	return &Link{ch: ch, log: log, ends: make(chan string, 4), gone: make(chan struct{})}
}

// Ready tells the supervisor that the holder catches signals: it forwards
// them from now on.
func (l *Link) Ready() {
	if err := l.ch.Send(Message{Kind: MsgReady}); err != nil {
		l.log.Debug().Err(err).Msg("telling the supervisor the holder is ready")
	}
}

// watch reads the supervisor's messages until its end closes.
func (l *Link) watch() {
	for {
		m, err := l.ch.Receive()
		switch {
		case errors.Is(err, ErrMalformed):
			l.log.Warn().Err(err).Msg("the supervisor's channel")
		case err != nil:
			l.goneOnce.Do(func() { close(l.gone) })
			return
		case m.Kind == MsgEnd:
			select {
			case l.ends <- m.Arg:
			default:
			}
		default:
			l.log.Warn().Str("message", m.String()).Msg("unexpected message from the supervisor: ignored")
		}
	}
}

// Gone is closed when the supervisor is gone (after AwaitGo).
func (l *Link) Gone() <-chan struct{} { return l.gone }

// Ends receives the leases that the supervisor watched and that ended.
func (l *Link) Ends() <-chan string { return l.ends }

// Finish tells the supervisor how the holder ends and closes the link. The
// supervisor stands by only when the target is known to be thawed: after a
// thaw, a rollback or a refusal; after a failed thaw (ExitThawFailed) it
// gets no "done" and takes over.
func (l *Link) Finish(code int) {
	if l == nil || l.finished {
		return
	}
	l.finished = true
	if code != contract.ExitThawFailed {
		if err := l.ch.Send(Message{Kind: MsgDone, Arg: strconv.Itoa(code)}); err != nil {
			l.log.Debug().Err(err).Msg("telling the supervisor the target is thawed")
		}
	}
	_ = l.ch.Close()
}

// HolderConfig is what a hold needs besides its target.
type HolderConfig struct {
	// Duration ends the hold by itself after this long (0: never).
	Duration time.Duration
	// Timeout bounds the freeze, and then the thaw, each.
	Timeout time.Duration
	// Stdin, when not nil, is a lease: its EOF ends the hold.
	Stdin io.Reader
	// StartTimeout, with Stdin: freeze only once a byte arrived on stdin,
	// and end with ExitNotStarted, nothing changed, when none came within
	// this long (0: no gate). Heartbeat, with Stdin: thaw when no byte
	// arrives for longer than this (0: none). gate.go.
	StartTimeout, Heartbeat time.Duration
	Drop                    DropConfig
	Log                     zerolog.Logger
	// Events receives the events; its Gone ends the hold (output_closed).
	Events *Writer
	// Terminal is stdin when it is a terminal and the terminal view is
	// painted: Enter paints the view again (with --lease stdin, Stdin is
	// read for it).
	Terminal io.Reader
}

// ending is why a hold ended, the cause of the hold's context.
type ending struct {
	reason string
	signal os.Signal
	code   int
}

func (e *ending) Error() string {
	if e.signal != nil {
		return "interrupted by " + e.signal.String()
	}
	return "interrupted: " + e.reason
}

// Hold freezes the target, holds it until a signal (from sigs), the
// duration, a lease, a closed output or the supervisor's death (link, which
// may be nil) ends the hold or the target does (freezer's Hold), thaws it,
// and returns the exit code. Events say what happened. An error is a
// failure that the caller reports (and maps with ExitCode); the target is
// thawed unless it wraps freezer.ErrThawFailed.
func Hold(cfg HolderConfig, t *freezer.Target, link *Link, sigs <-chan os.Signal) (int, error) {
	return hold(cfg, t, nil, time.Time{}, link, sigs)
}

// HoldAdopted is Hold for a freeze that the supervisor made and handed over
// (FreezeFirst; frozen from freezer.Adopt, confirmed at frozenAt, its
// frozen event out already): it holds and thaws as Hold does after its
// freeze. The terminal view is told of the freeze (Writer.Observe).
func HoldAdopted(cfg HolderConfig, frozen *freezer.Frozen, frozenAt time.Time, link *Link, sigs <-chan os.Signal) (int, error) {
	return hold(cfg, frozen.Target, frozen, frozenAt, link, sigs)
}

// hold is Hold, and HoldAdopted when frozen is not nil.
func hold(cfg HolderConfig, t *freezer.Target, frozen *freezer.Frozen, frozenAt time.Time, link *Link, sigs <-chan os.Signal) (int, error) {
	log, ev := cfg.Log, cfg.Events
	ctx, end := context.WithCancelCause(context.Background())
	defer end(nil)
	leases := make(chan string, 1)
	var words *stdinWatch
	switch {
	case cfg.Stdin != nil && (cfg.StartTimeout > 0 || cfg.Heartbeat > 0):
		// A caller that speaks on stdin (the gate, heartbeats) is a
		// program, not a person at a terminal: no Enter to repaint on.
		words = watchStdinWords(cfg.Stdin, leases)
	case cfg.Stdin != nil && cfg.Terminal != nil:
		go watchStdin(cfg.Stdin, leases, ev.Repaint)
	case cfg.Stdin != nil:
		go watchStdin(cfg.Stdin, leases, nil)
	case cfg.Terminal != nil:
		go watchEnter(cfg.Terminal, ev.Repaint)
	}
	var gone <-chan struct{}
	var linkEnds <-chan string
	if link != nil {
		gone, linkEnds = link.Gone(), link.Ends()
	}
	// What ends the hold whenever it comes, the freeze included: a signal
	// or the supervisor's death during the freeze rolls it back.
	go func() {
		select {
		case s := <-sigs:
			end(&ending{reason: contract.ReasonSignal, signal: s})
		case <-gone:
			end(&ending{reason: contract.ReasonSupervisorGone, code: contract.ExitSupervisorGone})
		case <-ctx.Done():
		}
	}()

	if frozen != nil {
		// The supervisor emitted frozen and holding; the terminal view
		// is this process's from here on.
		e := Base(t)
		e.Event = contract.EventFrozen
		ev.Observe(e, frozenAt)
		e.Event, e.Processes = contract.EventHolding, &frozen.Processes
		ev.Observe(e, frozenAt)
		return held(ctx, end, cfg, t, frozen, frozenAt, leases, linkEnds)
	}
	if words != nil && cfg.StartTimeout > 0 {
		if code, ok := awaitStart(ctx, cfg, words, t); !ok {
			return code, nil
		}
	}
	if words != nil && cfg.Heartbeat > 0 {
		go watchHeartbeat(ctx, leases, words, cfg.Heartbeat)
	}

	freezeCtx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, fmt.Errorf("the freeze took longer than its timeout %v", cfg.Timeout))
	defer cancel()
	start := time.Now()
	frozen, err := freezer.Freeze(freezeCtx, t)
	if err != nil {
		var why *ending
		if errors.As(context.Cause(ctx), &why) && why.code == contract.ExitSupervisorGone && !errors.Is(err, freezer.ErrThawFailed) {
			err = fmt.Errorf("%w: %w", ErrSupervisorGone, err)
		}
		return 0, err
	}
	frozenAt = time.Now()
	emitFrozen(ev, log, t, frozen, frozenAt.Sub(start))
	// The caller sees "frozen" before the hold goes on, unless stdout is
	// blocked (then the hold goes on after frozenFlushLimit) or the hold
	// ends meanwhile.
	ev.Flush(ctx.Done(), frozenFlushLimit)
	emitHolding(ev, log, t, frozen)
	return held(ctx, end, cfg, t, frozen, frozenAt, leases, linkEnds)
}

// held is the hold after the freeze: it drops the connections, holds until
// something ends the hold, thaws and says why.
func held(ctx context.Context, end context.CancelCauseFunc, cfg HolderConfig, t *freezer.Target, frozen *freezer.Frozen, frozenAt time.Time, leases, linkEnds <-chan string) (int, error) {
	log, ev := cfg.Log, cfg.Events
	// --duration counts from the confirmed freeze.
	var timer <-chan time.Time
	if cfg.Duration > 0 {
		tm := time.NewTimer(cfg.Duration - time.Since(frozenAt))
		defer tm.Stop()
		timer = tm.C
	}
	// An end that came with the confirmation ends the hold at once: the
	// connections are left alone then.
	if cfg.Drop.Mode != DropOff && ctx.Err() == nil {
		if err := dropConnections(cfg.Drop, ev, log, t); err != nil {
			if terr := thawWithin(cfg.Timeout, t, frozen); terr != nil {
				return 0, fmt.Errorf("%w; and then: %w", err, terr)
			}
			return 0, err
		}
	}
	if err := faults.Point("hold"); err != nil {
		log.Warn().Err(err).Msg("fault injected while holding")
	}

	// What ends the hold only once frozen: the duration, a lease (one that
	// ended during the freeze ends the hold at once), and the caller gone
	// from stdout. None waits on stdout: the events wait in the writer's
	// queue.
	go func() {
		select {
		case <-timer:
			end(&ending{reason: contract.ReasonDuration})
		case l := <-leases:
			end(&ending{reason: l})
		case l := <-linkEnds:
			end(&ending{reason: l})
		case <-ev.Gone():
			end(&ending{reason: contract.ReasonOutputClosed, code: contract.ExitOutputClosed})
		case <-ctx.Done():
		}
	}()
	// Whatever ends the hold ends it for a thaw: what the kernel makes
	// the thaw wait for starts as the end comes, while the hold stops.
	stopPrepare := context.AfterFunc(ctx, frozen.PrepareThaw)
	defer stopPrepare()
	holdErr := frozen.Hold(ctx, func(r freezer.HoldReport) { ev.Emit(holdEvent(t, r)) })
	log.Debug().AnErr("hold", holdErr).AnErr("cause", context.Cause(ctx)).Msg("the hold ended")

	// Thaw whatever ended the hold. Further signals stay caught (sigs is
	// still registered) and are ignored: a thaw is never cut short.
	thawStart := time.Now()
	thawErr := thawWithin(cfg.Timeout, t, frozen)
	switch {
	case errors.Is(holdErr, freezer.ErrTargetGone), errors.Is(holdErr, freezer.ErrThawedByOther):
		code, reason := contract.ExitTargetGone, contract.ReasonTargetGone
		if errors.Is(holdErr, freezer.ErrThawedByOther) {
			code, reason = contract.ExitThawedByOther, contract.ReasonThawedByOther
		}
		log.Warn().Err(holdErr).Msg("the hold ended")
		if thawErr != nil {
			return 0, fmt.Errorf("%w; and then: %w", holdErr, thawErr)
		}
		e := Base(t)
		e.Event, e.Reason, e.ExitCode, e.HeldMS = contract.EventEnded, reason, &code, MS(thawStart.Sub(frozenAt))
		ev.Emit(e)
		return code, nil
	case holdErr != nil:
		if thawErr != nil {
			return 0, fmt.Errorf("the hold failed: %w; and then: %w", holdErr, thawErr)
		}
		return 0, fmt.Errorf("the hold failed (the target was thawed): %w", holdErr)
	case thawErr != nil:
		return 0, thawErr
	}
	why := &ending{reason: "unknown"}
	_ = errors.As(context.Cause(ctx), &why)
	e := Base(t)
	e.Event, e.Processes, e.Reason = contract.EventThawed, &frozen.Processes, why.reason
	if why.signal != nil {
		e.Signal = why.signal.String()
	}
	e.ElapsedMS, e.HeldMS = MS(time.Since(thawStart)), MS(thawStart.Sub(frozenAt))
	ev.Emit(e)
	return why.code, nil
}

// holdEvent turns a report of the hold into its event.
func holdEvent(t *freezer.Target, r freezer.HoldReport) contract.Event {
	e := Base(t)
	e.Event, e.What, e.Cgroup = r.Kind, r.What, r.Cgroup
	if r.Kind == contract.EventRepaired {
		n := r.Processes
		e.Processes, e.LatencyMS = &n, MS(r.Latency)
	}
	if r.Err != nil {
		e.Error = r.Err.Error()
	}
	if e.Cgroup == "" {
		e.Cgroup = t.Path
	}
	return e
}

// emitFrozen emits the events of a confirmed freeze, whichever process
// froze: recovered (reason leftover) when the freeze first undid what a
// dead cgfreeze had left on the target, then frozen, with how long the
// freeze took (the count comes next, in holding: emitHolding).
func emitFrozen(ev *Writer, log zerolog.Logger, t *freezer.Target, frozen *freezer.Frozen, took time.Duration) {
	if rec := frozen.Recovered; rec.Recovered {
		log.Warn().Int("holder", rec.Holder).Str("strategy", string(rec.Strategy)).Msg("undid a freeze that a dead cgfreeze had left on the target, before freezing")
		e := Base(t)
		e.Event, e.State, e.Reason = contract.EventRecovered, "thawed", contract.ReasonLeftover
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
		ev.Emit(e)
	}
	e := Base(t)
	e.Event, e.ElapsedMS = contract.EventFrozen, MS(took)
	ev.Emit(e)
}

// emitHolding counts the processes a confirmed freeze holds and emits
// holding with them. It comes after frozen (event contract schema 2) so
// that the count, which costs the kernel 5 to 8 ms for 5000 processes,
// does not delay the confirmation. A count that fails is logged, and
// holding comes without processes.
func emitHolding(ev *Writer, log zerolog.Logger, t *freezer.Target, frozen *freezer.Frozen) {
	e := Base(t)
	e.Event = contract.EventHolding
	if n, err := frozen.Count(); err != nil {
		log.Warn().Err(err).Msg("counting the frozen processes")
	} else {
		e.Processes = &n
	}
	ev.Emit(e)
}
