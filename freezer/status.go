//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/mount"
)

// Status is what Inspect reports about a target.
type Status struct {
	// State is "thawed", "freezing" or "frozen": the kernel's view (v1
	// freezer.state; v2 cgroup.events, and for a subtree freeze the
	// cgfreeze child's).
	State string
	// FrozenBy is "cgfreeze" when cgfreeze's mark is on the target or on
	// the child a subtree freeze made, "other" when it is frozen without
	// one, "" when thawed.
	FrozenBy string
	// Holder is the PID of the cgfreeze that froze it, from its mark.
	Holder int
	// Held tells whether a live cgfreeze holds the target now (its lock is
	// taken); a mark without a holder is a dead cgfreeze's leftover.
	Held bool
	// Processes counts the processes in the target's cgroup tree.
	Processes int
}

// Inspect reads the target's freezer state. It changes nothing.
func Inspect(t *Target) (Status, error) {
	var st Status
	err := t.fs.Do(func(root *mount.Root) error {
		var err error
		if st.Processes, err = countProcesses(root, t.Path); err != nil {
			return classify(err)
		}
		var o ownership
		switch t.Version {
		case 1:
			state, err := root.ReadFile(path.Join(t.Path, "freezer.state"))
			if err != nil {
				return classify(err)
			}
			st.State = strings.ToLower(state)
			if o.mark, err = readMark(root, t.Path); err != nil {
				return err
			}
		case 2:
			requested, frozen, err := v2State(root, t.Path)
			if err != nil {
				return classify(err)
			}
			st.State = stateName(requested, frozen)
			if o, err = owned(root, t.Path, true); err != nil {
				return err
			}
			if len(o.children) > 0 && st.State == "thawed" {
				// A subtree freeze: the state is its child's.
				requested, frozen, err := v2State(root, path.Join(t.Path, o.children[0]))
				if err != nil {
					return classify(err)
				}
				st.State = stateName(requested, frozen)
			}
		}
		st.Held = isHeld(root, t.Path)
		if st.State == "thawed" {
			return nil
		}
		m := o.mark
		if m == nil {
			m = o.childMark
		}
		st.FrozenBy = "other"
		if m != nil {
			st.FrozenBy, st.Holder = "cgfreeze", m.Holder
		}
		return nil
	})
	return st, err
}

// Recovery tells what Recover found.
type Recovery struct {
	// Recovered is true when a freeze left by cgfreeze was undone.
	Recovered bool
	// Holder is the PID of the cgfreeze that had left it.
	Holder int
	// Strategy is how that freeze had been made.
	Strategy Strategy
}

// Recover undoes a freeze that a cgfreeze left on the target when it died:
// a frozen target carrying cgfreeze's mark, or a child cgroup that the marks
// prove to be cgfreeze's (its processes go back to the target, child
// cgroups it froze are thawed, it is removed). A child cgroup without proof
// is the workload's, whatever its name, and is left alone. Nothing frozen is no error. A freeze by someone else, or one
// that a live cgfreeze holds, is refused with ErrAlreadyFrozen and left
// alone. ctx must carry a deadline.
func Recover(ctx context.Context, t *Target) (Recovery, error) {
	return RecoverReleased(ctx, t, lockGrace)
}

// RecoverReleased is Recover for a caller that knows the holder has just
// died (a watchdog): it waits up to wait for the kernel to release the
// holder's lock. A lock still held after that belongs to another live
// cgfreeze, and is refused as Recover refuses it.
func RecoverReleased(ctx context.Context, t *Target, wait time.Duration) (Recovery, error) {
	if _, ok := ctx.Deadline(); !ok {
		return Recovery{}, errors.New("freezer.Recover needs a context with a deadline")
	}
	var rec Recovery
	err := t.fs.Do(func(root *mount.Root) error {
		lock, err := lockTargetWait(root, t.Path, wait)
		if errors.Is(err, errHeld) {
			return heldError(root, t.Path)
		}
		if err != nil {
			return err
		}
		defer lock.Close()
		rec, err = recoverLocked(ctx, root, t, lock)
		return err
	})
	return rec, err
}

// recoverLocked is Recover for a caller that holds the target's lock: any
// mark found is a dead holder's.
//
// lock is the lock's descriptor, the target's directory held open, through
// which its mark and children are read.
func recoverLocked(ctx context.Context, root *mount.Root, t *Target, lock *os.File) (Recovery, error) {
	var o ownership
	var err error
	if t.Version == 2 {
		o, err = ownedAt(root, lock, t.Path, true)
	} else {
		o.mark, err = readMarkAt(root, lock, t.Path)
	}
	if err != nil {
		return Recovery{}, err
	}
	if !o.any() {
		return Recovery{}, refuseForeignFreeze(root, t)
	}
	m, strategy := o.mark, t.Strategy
	if m == nil {
		// A child that carries a mark, and no intent on the target: a
		// cgfreeze from before the intent died holding it.
		m, strategy = o.childMark, StrategySubtree
	}
	if m.Strategy != "" {
		strategy = m.Strategy
	}
	rec := Recovery{Recovered: true, Holder: m.Holder, Strategy: strategy}
	err = retryThaw(ctx, func() error {
		if err := thaw(ctx, root, t.Path, strategy, o.subtreeChildren()); err != nil {
			return err
		}
		if strategy != StrategySubtree && len(o.children) > 0 {
			// Marked children beside a v1 or direct mark.
			return thaw(ctx, root, t.Path, StrategySubtree, nil)
		}
		return nil
	})
	return rec, err
}

// refuseForeignFreeze returns nil when an unmarked target is thawed, and
// ErrAlreadyFrozen when someone else froze it.
func refuseForeignFreeze(root *mount.Root, t *Target) error {
	var state string
	switch t.Version {
	case 1:
		s, err := root.ReadFile(path.Join(t.Path, "freezer.state"))
		if err != nil {
			return classify(err)
		}
		state = strings.ToLower(s)
	case 2:
		requested, frozen, err := v2State(root, t.Path)
		if err != nil {
			return classify(err)
		}
		state = stateName(requested, frozen)
	}
	if state == "thawed" {
		return nil
	}
	return fmt.Errorf("%w: %s is %s by someone else (no cgfreeze mark on it); cgfreeze thaws only its own freezes: undo it with the tool that froze it (for example runc resume)", ErrAlreadyFrozen, t.Path, state)
}
