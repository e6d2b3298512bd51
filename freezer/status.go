package freezer

import (
	"context"
	"errors"
	"fmt"
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
	// FrozenBy is "cgfreeze" when cgfreeze's mark is on the target or its
	// child, "other" when it is frozen without one, "" when thawed.
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
		markedPath := t.Path
		switch t.Version {
		case 1:
			state, err := root.ReadFile(path.Join(t.Path, "freezer.state"))
			if err != nil {
				return classify(err)
			}
			st.State = strings.ToLower(state)
		case 2:
			requested, frozen, err := v2State(root, t.Path)
			if err != nil {
				return classify(err)
			}
			st.State = stateName(requested, frozen)
			child := path.Join(t.Path, ChildName)
			if ok, _ := root.Exists(child); ok && st.State == "thawed" {
				markedPath = child
				requested, frozen, err := v2State(root, child)
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
		m, err := readMark(root, markedPath)
		if err != nil {
			return err
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
// a frozen target carrying cgfreeze's mark, or a cgfreeze child cgroup (its
// processes go back to the target, child cgroups it froze are thawed, it is
// removed). Nothing frozen is no error. A freeze by someone else, or one
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
		rec, err = recoverLocked(ctx, root, t)
		return err
	})
	return rec, err
}

// recoverLocked is Recover for a caller that holds the target's lock: any
// mark found is a dead holder's.
func recoverLocked(ctx context.Context, root *mount.Root, t *Target) (Recovery, error) {
	markedPath, strategy := t.Path, t.Strategy
	childExists := false
	if t.Version == 2 {
		child := path.Join(t.Path, ChildName)
		ok, err := root.Exists(child)
		if err != nil {
			return Recovery{}, err
		}
		if ok {
			childExists = true
			markedPath, strategy = child, StrategySubtree
		}
	}
	m, err := readMark(root, markedPath)
	if err != nil {
		return Recovery{}, err
	}
	if m == nil {
		if !childExists {
			return Recovery{}, refuseForeignFreeze(root, t)
		}
		// A child without a mark is cgfreeze's all the same (its name
		// says so): the holder died between mkdir and the mark.
		m = &mark{Strategy: StrategySubtree}
	}
	if m.Strategy != "" {
		strategy = m.Strategy
	}
	rec := Recovery{Recovered: true, Holder: m.Holder, Strategy: strategy}
	err = retryThaw(ctx, func() error { return thaw(ctx, root, t.Path, strategy, m.Children) })
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
