package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/internal/jsonenc"
	"github.com/rs/zerolog"
)

// Freeze first, then hand the hold over (docs/design.md, "Roles, not
// processes"): the supervisor, which has resolved the target, tells its
// holder what it is about to freeze (the intent: from then on the holder is
// its guard and recovers the target if the supervisor dies), freezes it
// itself, emits "frozen", and passes the hold to the holder with its lock
// (the hand-over). Then the roles are today's: the holder holds and thaws,
// the supervisor guards it. The holder's start and its own resolution are
// off the path from exec to "frozen".

// Intent names the target the supervisor resolved. With "freeze", the
// holder reaches it through the supervisor's mount, passed beside it
// (freezer.Share, freezer.Open: Word.Files), to recover it or to adopt its
// freeze; with "go" (the slow path) it resolves it again from PID and
// checks that it finds Path.
type Intent struct {
	freezer.Handle
}

// Handover is what the holder needs, besides the lock, to take a freeze
// over: the count the holding event gave, and when the freeze was confirmed
// (--duration and held_ms count from it).
type Handover struct {
	Processes int `json:"processes"`
	// FrozenAt is the wall-clock time of the confirmation, in Unix
	// nanoseconds (both processes read the same clock).
	FrozenAt int64 `json:"frozen_at"`
}

// encodeJSON writes the argument of a "go", "freeze" or "hold" message:
// the JSON object json.Marshal gives, written by hand (appendJSON), since
// the supervisor writes them on its way to the freeze's write, where
// json.Marshal's first use of a type (its encoder built by reflection)
// would cost a fresh process 0.1-0.2 ms.
func encodeJSON[T Intent | Handover](v T) string {
	var b []byte
	switch v := any(v).(type) {
	case Intent:
		b = v.appendJSON(make([]byte, 0, 256))
	case Handover:
		b = v.appendJSON(make([]byte, 0, 64))
	}
	return string(b)
}

// appendJSON appends the intent as json.Marshal writes it (the fields of
// freezer.Handle, in order; wire_test.go holds the two equal).
func (in Intent) appendJSON(b []byte) []byte {
	h := in.Handle
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(h.PID), 10)
	if h.ContainerID != "" {
		b = append(b, `,"container_id":`...)
		b = jsonenc.AppendString(b, h.ContainerID)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(h.Version), 10)
	b = append(b, `,"path":`...)
	b = jsonenc.AppendString(b, h.Path)
	b = append(b, `,"strategy":`...)
	b = jsonenc.AppendString(b, string(h.Strategy))
	if h.EnteredNamespace {
		b = append(b, `,"entered_namespace":true`...)
	}
	if len(h.Controllers) > 0 {
		b = append(b, `,"controllers":`...)
		b = jsonenc.AppendStrings(b, h.Controllers)
	}
	return append(b, '}')
}

// parseJSON reads an intent as json.Unmarshal does, without its
// reflection (on the slow path the holder freezes right after it; on the
// fast path it runs beside the supervisor's freeze, on the same CPUs):
// what both read they read alike, and what json.Unmarshal refuses this
// refuses too (FuzzWireParse). It is stricter: a member it does not know
// or a null is an error (both ends are the same binary).
func (in *Intent) parseJSON(s string) error {
	var h freezer.Handle
	err := jsonenc.Object(s, func(key string, r *jsonenc.Reader) error {
		var err error
		var n int64
		var str string
		switch key {
		case "pid":
			n, err = r.Int(strconv.IntSize)
			h.PID = int(n)
		case "container_id":
			h.ContainerID, err = r.String()
		case "version":
			n, err = r.Int(strconv.IntSize)
			h.Version = int(n)
		case "path":
			h.Path, err = r.String()
		case "strategy":
			str, err = r.String()
			h.Strategy = freezer.Strategy(str)
		case "entered_namespace":
			h.EnteredNamespace, err = r.Bool()
		case "controllers":
			h.Controllers, err = r.Strings()
		default:
			err = fmt.Errorf("unknown member %q", key)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("read the intent %q: %w", s, err)
	}
	in.Handle = h
	return nil
}

// parseJSON reads a hand-over as json.Unmarshal does (Intent.parseJSON).
func (h *Handover) parseJSON(s string) error {
	var got Handover
	err := jsonenc.Object(s, func(key string, r *jsonenc.Reader) error {
		var err error
		var n int64
		switch key {
		case "processes":
			n, err = r.Int(strconv.IntSize)
			got.Processes = int(n)
		case "frozen_at":
			got.FrozenAt, err = r.Int(64)
		default:
			err = fmt.Errorf("unknown member %q", key)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("read the hand-over %q: %w", s, err)
	}
	*h = got
	return nil
}

// appendJSON appends the hand-over as json.Marshal writes it.
func (h Handover) appendJSON(b []byte) []byte {
	b = append(b, `{"processes":`...)
	b = strconv.AppendInt(b, int64(h.Processes), 10)
	b = append(b, `,"frozen_at":`...)
	b = strconv.AppendInt(b, h.FrozenAt, 10)
	return append(b, '}')
}

// Word is the supervisor's first word to its holder.
type Word struct {
	// Kind is MsgGo (the holder freezes: the slow path) or MsgFreeze (the
	// supervisor freezes and hands the hold over: AwaitHandover next).
	Kind   string
	Intent Intent
	// Files, with "freeze", are the files freezer.Open needs; the caller
	// closes them.
	Files []*os.File
}

// AwaitWord waits for the supervisor's first word: "go" or "freeze", with
// the target it resolved. It returns ErrAborted or ErrSupervisorGone when
// the supervisor gave up or died before it; then nothing has changed and
// the holder ends without a word.
func (l *Link) AwaitWord() (Word, error) {
	for {
		m, err := l.ch.Receive()
		switch {
		case errors.Is(err, ErrMalformed):
			l.log.Warn().Err(err).Msg("the supervisor's channel")
			continue
		case err != nil:
			return Word{}, fmt.Errorf("%w before the freeze (%w)", ErrSupervisorGone, err)
		case m.Kind == MsgGo, m.Kind == MsgFreeze:
			w := Word{Kind: m.Kind}
			if err := w.Intent.parseJSON(m.Arg); err != nil || w.Intent.Path == "" {
				l.log.Warn().Str("message", m.String()).Msg("malformed word from the supervisor: ignored")
				continue
			}
			if m.Kind == MsgGo {
				go l.watch()
				return w, nil
			}
			n := 1
			if w.Intent.EnteredNamespace {
				n = 2
			}
			for range n {
				if f := l.ch.TakeFile(); f != nil {
					w.Files = append(w.Files, f)
				}
			}
			return w, nil
		case m.Kind == MsgAbort:
			return Word{}, ErrAborted
		default:
			l.log.Warn().Str("message", m.String()).Msg("unexpected message from the supervisor before its word: ignored")
		}
	}
}

// ErrNoLock: a hand-over came without the lock beside it.
var ErrNoLock = errors.New("the hand-over came without the holder's lock")

// AwaitHandover waits, after the intent, for the hand-over: what it says
// and the holder's lock, which the caller owns from here on (it adopts the
// freeze with it: freezer.Adopt). It returns ErrAborted when the supervisor
// rolled its freeze back (nothing is left changed), and ErrSupervisorGone
// when it died before the hand-over: then the target may be frozen, or
// half-frozen, by nobody, and the holder recovers it (RecoverIntent).
func (l *Link) AwaitHandover() (Handover, *os.File, error) {
	for {
		m, err := l.ch.Receive()
		switch {
		case errors.Is(err, ErrMalformed):
			l.log.Warn().Err(err).Msg("the supervisor's channel")
			continue
		case err != nil:
			return Handover{}, nil, fmt.Errorf("%w during the freeze (%w)", ErrSupervisorGone, err)
		case m.Kind == MsgHold:
			lock := l.ch.TakeFile()
			var h Handover
			if err := h.parseJSON(m.Arg); err != nil {
				l.log.Warn().Str("message", m.String()).Err(err).Msg("malformed hand-over: taken with no count")
			}
			go l.watch()
			if lock == nil {
				return h, nil, ErrNoLock
			}
			return h, lock, nil
		case m.Kind == MsgAbort:
			return Handover{}, nil, ErrAborted
		default:
			l.log.Warn().Str("message", m.String()).Msg("unexpected message from the supervisor during its freeze: ignored")
		}
	}
}

// Leave ends a holder that ends without holding: it closes the link with
// no "done", so a supervisor that still watches recovers the target.
func (l *Link) Leave() {
	if l == nil || l.finished {
		return
	}
	l.finished = true
	_ = l.ch.Close()
}

// RecoverIntent is the holder's recovery when its supervisor died between
// the intent and the hand-over: the target may be frozen by a freeze that
// nobody holds now. It waits for the kernel to release the dead
// supervisor's lock, undoes whatever the marks prove to be cgfreeze's (as
// `cgfreeze thaw` does), and emits recovered (reason watchdog) when it
// undid something, nothing otherwise.
func RecoverIntent(t *freezer.Target, timeout time.Duration, ev *Writer) error {
	return recoverReleased(t, timeout, ev, false)
}

// intend tells the holder what the supervisor is about to freeze, and
// passes it the target's mount (freezer.Share).
func (h *HolderProcess) intend(t *freezer.Target) error {
	handle, files, err := t.Share()
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	return h.ch.SendFile(Message{Kind: MsgFreeze, Arg: encodeJSON(Intent{handle})}, files...)
}

// FreezeFirst is the supervisor's side of a freeze on the fast path: with
// its holder h started (and waiting for its word) and the target t
// resolved, it says its intent, freezes t itself, emits frozen, hands the
// hold over to h and then guards it (Supervise), and returns the exit
// code. A signal (from sigs) or the timeout during the freeze rolls it
// back: the holder is told "abort", and the error wraps
// freezer.ErrFreezeFailed. A holder that died before the freeze was
// confirmed: the freeze is rolled back, the same error. One that died
// after "frozen", before it took the hold: the supervisor thaws the target
// itself, as a watchdog, emits recovered (reason watchdog) and returns
// ExitHolderDied, as if the holder had died a moment later.
func FreezeFirst(h *HolderProcess, t *freezer.Target, timeout time.Duration, ev *Writer, log zerolog.Logger, sigs <-chan os.Signal) (int, error) {
	if err := h.intend(t); err != nil {
		if !peerClosed(h.ch.f) {
			h.Abort()
			return 0, err
		}
		// The holder died before anything changed: as a holder that
		// died before its word, the guard finds nothing to undo.
		log.Warn().Err(err).Msg("telling the holder the intent")
		faults.Disable()
		return Supervise(h, t, timeout, ev, log, sigs)
	}
	if err := faults.Point("supervisor:intent"); err != nil {
		log.Warn().Err(err).Msg("fault injected after the intent")
	}

	// A signal during the freeze rolls it back; one that comes after the
	// confirmation goes to the holder once it holds.
	ctx, end := context.WithCancelCause(context.Background())
	defer end(nil)
	stop, taken := make(chan struct{}), make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sigs:
			taken <- s
			end(&ending{reason: contract.ReasonSignal, signal: s})
		case <-stop:
		}
	}()
	freezeCtx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the freeze took longer than its timeout %v", timeout))
	defer cancel()
	start := time.Now()
	frozen, err := freezer.Freeze(freezeCtx, t)
	close(stop)
	if err != nil {
		h.Abort()
		return 0, err
	}
	frozenAt := time.Now()
	if peerClosed(h.ch.f) {
		faults.Disable()
		// The holder died during the freeze: nobody would guard the
		// hold. The caller has seen no "frozen": roll it back.
		err := fmt.Errorf("%w: the holder process (PID %d) died during the freeze; the freeze was rolled back", freezer.ErrFreezeFailed, h.PID())
		if terr := thawWithin(timeout, t, frozen); terr != nil {
			err = fmt.Errorf("%w; and then: %w", err, terr)
		}
		h.Abort()
		return 0, err
	}

	emitFrozen(ev, log, t, frozen, frozenAt.Sub(start))
	// "frozen" is out before the holder can write anything of its own.
	ev.Flush(nil, frozenFlushLimit)
	// The caller that waits for "frozen" has just been woken, most
	// likely onto this CPU (the kernel places a woken reader beside its
	// writer), where it would wait for this process's count and
	// hand-over while the holder, still starting, takes the other CPU:
	// the CPU is offered to it first.
	yieldCPU()
	emitHolding(ev, log, t, frozen)
	// So is "holding": the supervisor's last word on stdout.
	ev.Flush(nil, frozenFlushLimit)
	if err := faults.Point("supervisor:handover"); err != nil {
		log.Warn().Err(err).Msg("fault injected before the hand-over")
	}

	msg := Message{Kind: MsgHold, Arg: encodeJSON(Handover{Processes: frozen.Processes, FrozenAt: frozenAt.UnixNano()})}
	// From here on the supervisor is the guard, which must survive the
	// faults injected into the holder.
	faults.Disable()
	if err := frozen.HandOver(h.PID(), func(lock *os.File) error { return h.ch.SendFile(msg, lock) }); err != nil {
		died := peerClosed(h.ch.f)
		log.Warn().Err(err).Bool("holder_gone", died).Msg("the hold could not be handed over: thawing")
		thawStart := time.Now()
		if terr := thawWithin(timeout, t, frozen); terr != nil {
			h.Abort()
			return 0, terr
		}
		if !died {
			// The holder lives (the mark could not be rewritten):
			// it is told to end, and the run fails.
			h.Abort()
			return 0, fmt.Errorf("hand the hold over to the holder (the target was thawed): %w", err)
		}
		e := Base(t)
		e.Event, e.State, e.Reason = contract.EventRecovered, "thawed", contract.ReasonWatchdog
		e.ElapsedMS = MS(time.Since(thawStart))
		e.Strategy, e.Holder = string(t.Strategy), os.Getpid()
		ev.Emit(e)
		h.Abort()
		return contract.ExitHolderDied, nil
	}
	select {
	case s := <-taken:
		// Taken just as the freeze was confirmed: the holder ends the
		// hold with it.
		h.pending = append(h.pending, s)
	default:
	}
	return Supervise(h, t, timeout, ev, log, sigs)
}
