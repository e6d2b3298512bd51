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
	"github.com/rs/zerolog"
)

// The supervisor's side of a freeze. docs/design.md ("The watchdog") says
// why it is the parent and the first process.

const (
	// HolderLockWait is how long the supervisor waits for the kernel to
	// release a dead holder's lock before it recovers.
	HolderLockWait = 2 * time.Second
	// holderAbortLimit bounds the wait for a holder to end when the
	// supervisor gives up before anything changed.
	holderAbortLimit = 10 * time.Second
)

// HolderProcess is a started holder, seen from its supervisor.
type HolderProcess struct {
	proc   *process
	ch     *Channel
	parent *os.File // the pidfd of a --lease parent, or nil
	// told: the supervisor has said "go" or "abort".
	told bool
	// pending are signals to forward once the holder is ready.
	pending []os.Signal
	// prime, when not nil, is called as a signal or the parent lease's
	// end comes, after it is passed on: the end of the hold is near
	// (freezer.Primer). It may block until the thaw's first wait is over.
	prime func()
	// release, when not nil, is called once the holder said "done": the
	// target is thawed, and nothing the supervisor holds for a recovery
	// is needed any more.
	release func()
}

// StartHolder starts exe with args as the holder, with its end of the
// channel as descriptor ChannelFD, stdin, stdout and stderr shared. The
// holder waits for Proceed (or Abort) before it changes anything, so it
// may be started before the supervisor has resolved the target: both then
// resolve at the same time. parent, when not nil, is a pidfd whose exit
// ends the hold (--lease parent): the supervisor watches it and tells the
// holder; HolderProcess owns it from here.
func StartHolder(exe string, args []string, stdin, stdout, stderr *os.File, parent *os.File) (*HolderProcess, error) {
	own, other, err := NewChannelPair()
	if err != nil {
		return nil, err
	}
	defer other.Close()
	// The holder reads stdin for --lease stdin; the supervisor never does.
	// Its end of the channel is descriptor 3 = ChannelFD. It stays in the
	// supervisor's process group: a holder in a background group that
	// reads a terminal (--lease stdin) would be stopped by SIGTTIN. A
	// terminal's Ctrl-C then reaches both, and the holder ignores the
	// forwarded copy as it ignores any second signal.
	pid, err := forkExec(exe, append([]string{exe}, args...), []*os.File{stdin, stdout, stderr, other})
	if err != nil {
		_ = own.Close()
		return nil, fmt.Errorf("start the holder %s: %w", exe, err)
	}
	return &HolderProcess{proc: newProcess(pid), ch: NewChannel(own), parent: parent}, nil
}

// PID is the holder's process ID.
func (h *HolderProcess) PID() int { return h.proc.pid }

// Proceed tells the holder the target the supervisor resolved (the slow
// path: the holder freezes it, after the start gate): it resolves it from
// the same process and goes on if it finds the same cgroup.
func (h *HolderProcess) Proceed(t *freezer.Target) error {
	if h.told {
		return nil
	}
	h.told = true
	return h.ch.Send(Message{Kind: MsgGo, Arg: encodeJSON(Intent{freezer.Handle{PID: t.PID, Path: t.Path}})})
}

// Abort tells the holder that the supervisor gave up before anything
// changed, and waits for it to end (a bounded time, then SIGKILL): it
// changed nothing and says nothing.
func (h *HolderProcess) Abort() {
	if !h.told {
		h.told = true
		_ = h.ch.Send(Message{Kind: MsgAbort})
	}
	exited := h.proc.wait()
	select {
	case <-exited:
	case <-time.After(holderAbortLimit):
		h.proc.signal(os.Kill)
		<-exited
	}
	h.close()
}

func (h *HolderProcess) close() {
	_ = h.ch.Close()
	if h.parent != nil {
		_ = h.parent.Close()
	}
}

// Guard is the guard's role on its end of the channel, whichever process
// plays it: it reads the holder's messages until the holder's end closes
// (the holder ended, whatever ended it), and returns whether the holder
// said "done" and the code it announced (-1 without one). Without "done",
// the guard recovers the target (RecoverTarget).
func Guard(ch *Channel) (done bool, code int) {
	return guard(ch, nil, nil)
}

// guard is Guard; ready, when not nil, is called when the holder says it
// is ready (it catches signals), and released, when not nil, when it says
// "done".
func guard(ch *Channel, ready, released func()) (done bool, code int) {
	code = -1
	for {
		m, err := ch.Receive()
		if errors.Is(err, ErrMalformed) {
			continue
		}
		if err != nil {
			return done, code
		}
		if m.Kind == MsgReady && ready != nil {
			ready()
			ready = nil
		}
		if m.Kind == MsgDone {
			done = true
			if n, err := strconv.Atoi(m.Arg); err == nil {
				code = n
			}
			if released != nil {
				released()
				released = nil
			}
		}
	}
}

// HolderEnd is how a holder ended, as its supervisor saw it.
type HolderEnd struct {
	// Done: the holder said "done": the target is known to be thawed.
	Done bool
	// Code is the holder's exit code; when it died by a signal after
	// "done", the code it announced.
	Code int
	// Signal killed the holder, or nil.
	Signal os.Signal
}

// Wait forwards sigs to the holder and waits for it to end; when the
// parent lease ends, it tells the holder so. Signals wait until the holder
// said it is ready: one started as the supervisor began may still be
// starting when the freeze is confirmed, and would die of a signal it does
// not catch yet.
func (h *HolderProcess) Wait(sigs <-chan os.Signal) HolderEnd {
	done := make(chan HolderEnd, 1)
	ready := make(chan struct{})
	go func() {
		ok, code := guard(h.ch, func() { close(ready) }, h.release)
		done <- HolderEnd{Done: ok, Code: code}
	}()
	if h.parent != nil {
		go func() {
			waitExit(h.parent)
			_ = h.ch.Send(Message{Kind: MsgEnd, Arg: LeaseParent})
			if h.prime != nil {
				h.prime()
			}
		}()
	}
	exited := h.proc.wait()
	isReady := false
	for running := true; running; {
		select {
		case s := <-sigs:
			// The holder may be gone already; then there is nothing to
			// forward to.
			if isReady {
				h.proc.signal(s)
			} else {
				h.pending = append(h.pending, s)
			}
			switch {
			case h.prime == nil:
			case isReady:
				// In line, after the signal is passed on: the
				// holder's exit, the next thing this loop waits
				// for, comes after the wait it may block for.
				h.prime()
			default:
				// The holder's ready, and the signals it
				// releases, must not wait for it.
				go h.prime()
			}
		case <-ready:
			isReady, ready = true, nil
			for _, s := range h.pending {
				h.proc.signal(s)
			}
			h.pending = nil
		case <-exited:
			running = false
		}
	}
	end := <-done
	if h.proc.sig != nil {
		end.Signal = h.proc.sig
	} else {
		// Its own exit code is the last word, "done" or not.
		end.Code = h.proc.code
	}
	if end.Code < 0 {
		end.Code = contract.ExitHolderDied
	}
	h.close()
	return end
}

// Supervise watches a started holder until it ends and returns the exit
// code. A holder that said "done" has left the target thawed: its code
// stands, even when it was killed afterwards. One that ended without it
// (SIGKILL, the OOM killer, a panic, a failed thaw) left the target frozen
// or half-thawed: the supervisor undoes the freeze as `cgfreeze thaw`
// does, from the target it resolved before anything changed, emits the
// recovered event (reason watchdog) and returns ExitHolderDied, or the
// holder's own code when it exited. An error is a recovery that failed.
func Supervise(h *HolderProcess, t *freezer.Target, timeout time.Duration, ev *Writer, log zerolog.Logger, sigs <-chan os.Signal) (int, error) {
	// The signal that ends a hold comes here first: a subtree thaw's
	// first wait starts as it is relayed, not when the holder gets to it.
	primer := freezer.OpenPrimer(t)
	h.prime = primer.Prime
	// Once the holder said "done", the target's mount is closed while the
	// holder exits, not after: the supervisor's own exit comes right
	// after the holder's, and the kernel's release of a mount takes a
	// while (Close again later does nothing).
	h.release = func() { _ = t.Close() }
	end := h.Wait(sigs)
	_ = primer.Close()
	if end.Done {
		if end.Signal != nil {
			log.Debug().Str("signal", end.Signal.String()).Int("exit_code", end.Code).Msg("the holder was killed after the target was thawed")
		}
		return end.Code, nil
	}
	code := end.Code
	if end.Signal != nil {
		log.Warn().Str("signal", end.Signal.String()).Msg("the holder died without thawing the target: recovering")
		code = contract.ExitHolderDied
	} else {
		log.Warn().Int("exit_code", code).Msg("the holder ended without thawing the target: recovering")
	}
	if err := RecoverTarget(t, timeout, ev); err != nil {
		return 0, err
	}
	return code, nil
}

// RecoverTarget is the guard's recovery when the holder ended without
// "done": it waits up to HolderLockWait for the kernel to release the dead
// holder's lock, undoes the freeze as `cgfreeze thaw` does, and emits the
// recovered event (reason watchdog), or nothing_to_thaw.
func RecoverTarget(t *freezer.Target, timeout time.Duration, ev *Writer) error {
	return recoverReleased(t, timeout, ev, true)
}

// recoverReleased is the guards' recovery (RecoverTarget, RecoverIntent):
// it waits up to HolderLockWait for the kernel to release a dead process's
// lock, undoes what the marks prove to be cgfreeze's, and emits recovered
// (reason watchdog) when it undid something; otherwise nothing_to_thaw,
// when nothing is set.
func recoverReleased(t *freezer.Target, timeout time.Duration, ev *Writer, nothing bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	rec, err := freezer.RecoverReleased(ctx, t, HolderLockWait)
	if err != nil || (!rec.Recovered && !nothing) {
		return err
	}
	e := Base(t)
	e.Event, e.State, e.Reason = contract.EventRecovered, "thawed", contract.ReasonWatchdog
	e.ElapsedMS = MS(time.Since(start))
	if rec.Recovered {
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
	} else {
		e.Event = contract.EventNothingToThaw
	}
	ev.Emit(e)
	return nil
}
