//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
)

// rollbackLimit bounds a rollback after a failed freeze, which must not
// inherit the expired deadline of the freeze it undoes.
const rollbackLimit = 10 * time.Second

// Frozen is a confirmed freeze of a target. Thaw it.
type Frozen struct {
	Target *Target
	// Processes is the number of processes the freeze holds, once Count
	// has counted them (0 before). Freeze does not count: the kernel lists
	// a cgroup's processes at about 1 µs each (v2) to 1.5 µs (v1, which
	// sorts them), 5 to 8 ms for 5000 processes, which a caller that
	// waits for the confirmation need not wait for.
	Processes int
	// Recovered tells what Freeze undid first: the leftovers of a
	// cgfreeze that died holding this target.
	Recovered Recovery
	// impl is the target's strategy.
	impl strategy
	// children are the target's child cgroups that the subtree strategy
	// froze in place.
	children []string
	// child is the name of the child cgroup that the subtree strategy
	// created under the target and holds the target's processes in.
	child string
	// mark is the subtree strategy's mark (the target's, naming child),
	// rewritten on the target and the child when the hold freezes more
	// children.
	mark mark
	// moved is the number of processes the subtree strategy moved.
	moved int
	// lock is the holder's lock on the target, kept until the thaw.
	lock *os.File
	// thawedSeen tells the strategy's freeze that the target was read
	// thawed under the lock a moment before (no mark, nothing to
	// recover): it does not read its state again.
	thawedSeen bool
}

// Freeze freezes the target and returns once the kernel confirms it (v1
// freezer.state FROZEN, v2 cgroup.events "frozen 1"). ctx must carry a
// deadline; when it expires or is cancelled first, everything done is
// rolled back and the error wraps ErrFreezeFailed (and ErrThawFailed if the
// rollback failed too).
//
// The caller becomes the target's holder: a second Freeze or Recover, from
// this process or any other, is refused with ErrAlreadyFrozen until Thaw
// succeeds or the holder dies. Leftovers of a holder that died are undone
// first (Frozen.Recovered says so). A target frozen by another tool is
// refused with ErrAlreadyFrozen and left alone.
func Freeze(ctx context.Context, t *Target) (*Frozen, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("freezer.Freeze needs a context with a deadline")
	}
	impl, err := strategyFor(t.Strategy)
	if err != nil {
		return nil, err
	}
	f := &Frozen{Target: t, impl: impl}
	err = t.fs.Do(func(root *mount.Root) (err error) {
		lock, err := lockTargetWait(root, t.Path, lockGrace)
		if errors.Is(err, errHeld) {
			return heldError(root, t.Path)
		}
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = lock.Close()
			}
		}()
		if err := faults.Point("freeze:locked"); err != nil {
			return err
		}
		if f.Recovered, err = recoverLocked(ctx, root, t, lock); err != nil {
			return err
		}
		f.thawedSeen = !f.Recovered.Recovered
		// The strategy writes the target's mark through the lock's
		// descriptor (f.lock), which stays closed here if it fails.
		f.lock = lock
		if err := impl.freeze(ctx, root, f); err != nil {
			return err
		}
		if ctx.Err() != nil {
			// Confirmed, but too late, or after the caller gave up
			// (a signal): the caller no longer waits for this freeze.
			return f.rollback(root, fmt.Errorf("%w: %w", ErrFreezeFailed, context.Cause(ctx)))
		}
		if err := faults.Point("freeze:confirmed"); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Count counts the processes the freeze holds and records them in
// Processes: once frozen, none forks or moves in (the hold puts back what
// does), so the count is exact. The subtree strategy counts the processes
// it moved and those of the children it froze in place; the others list
// the target's cgroup tree.
func (f *Frozen) Count() (int, error) {
	t := f.Target
	var n int
	err := t.fs.Do(func(root *mount.Root) error {
		if t.Strategy != StrategySubtree {
			var err error
			n, err = countProcesses(root, t.Path)
			return err
		}
		n = f.moved
		for _, name := range f.children {
			m, err := countProcesses(root, path.Join(t.Path, name))
			if ignoreCgroupRemoved(err) != nil {
				return err
			}
			n += m
		}
		return nil
	})
	if err != nil {
		return 0, classify(err)
	}
	f.Processes = n
	return n, nil
}

// Thaw undoes the freeze and returns once the kernel confirms it, with every
// moved process back in the target's cgroup and the child cgroup removed. It
// retries until ctx, which must carry a deadline, ends; then the error wraps
// ErrThawFailed and says what is left.
func (f *Frozen) Thaw(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("freezer.Frozen.Thaw needs a context with a deadline")
	}
	t := f.Target
	return t.fs.Do(func(root *mount.Root) error {
		if err := faults.Point("thaw:started"); err != nil {
			return fmt.Errorf("%w: %w", ErrThawFailed, err)
		}
		if err := retryThaw(ctx, func() error { return f.impl.thaw(ctx, root, t.Path, f.children) }); err != nil {
			return err
		}
		if err := faults.Point("thaw:confirmed"); err != nil {
			return fmt.Errorf("%w: %w", ErrThawFailed, err)
		}
		if f.lock != nil {
			_ = f.lock.Close()
			f.lock = nil
		}
		return nil
	})
}

// Abandon gives up the holder's lock without thawing, for a caller whose
// Thaw failed and that hands the target over to a watchdog or to `cgfreeze
// thaw`, which need the lock to recover it.
func (f *Frozen) Abandon() {
	t := f.Target
	_ = t.fs.Do(func(*mount.Root) error {
		if f.lock != nil {
			_ = f.lock.Close()
			f.lock = nil
		}
		return nil
	})
}

// retryThaw repeats an idempotent thaw until it succeeds or ctx ends.
func retryThaw(ctx context.Context, thawOnce func() error) error {
	for {
		err := thawOnce()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrThawFailed, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rollback undoes a failed freeze with the strategy's rollback; err is the
// failure, returned with the rollback's own failure if it fails too.
func (f *Frozen) rollback(root *mount.Root, err error) error {
	return rollback(err, func(ctx context.Context) error { return f.impl.rollback(ctx, root, f) })
}

// rollback undoes a failed freeze; err is the failure. The rollback gets a
// deadline of its own.
func rollback(err error, undo func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackLimit)
	defer cancel()
	if rerr := retryThaw(ctx, func() error { return undo(ctx) }); rerr != nil {
		return fmt.Errorf("%w; the rollback failed too: %w", err, rerr)
	}
	return err
}

// alreadyFrozen explains a target that is frozen before cgfreeze touched it.
func alreadyFrozen(root *mount.Root, markedPath, cgPath, state string) error {
	m, err := readMark(root, markedPath)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s is %s; its cgfreeze mark cannot be read: %w", ErrAlreadyFrozen, cgPath, state, err)
	case m != nil:
		return fmt.Errorf("%w: %s was left %s by a cgfreeze that is gone (PID %d, since %s); run `cgfreeze thaw` with the same --pid to undo it", ErrAlreadyFrozen, cgPath, state, m.Holder, m.Since.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %s is %s by someone else (for example runc pause or docker pause); cgfreeze does not take over another tool's freeze: undo it with that tool", ErrAlreadyFrozen, cgPath, state)
}
