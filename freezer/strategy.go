//go:build linux

package freezer

import (
	"context"
	"fmt"

	"github.com/cgfreeze/cgfreeze/mount"
)

// strategy is one way of freezing a target: one file each (v1.go, direct.go,
// subtree.go). Freeze, Thaw, Recover and Hold do what is common (the lock,
// the deadline, the retries, the rollback's own deadline) and leave to the
// strategy what touches the cgroups. Adding a strategy is adding a file with
// a type that implements this interface and a case in strategyFor; the
// compiler catches a missing method.
//
// Every method runs on the mount's thread, inside mount.FS.Do.
type strategy interface {
	// freeze refuses a target that is frozen already (by another tool,
	// or left by a dead cgfreeze), marks what it will write, writes the
	// freeze and returns once the kernel confirms it. When it fails it
	// has rolled back what it did before it returns (rollback).
	freeze(ctx context.Context, root *mount.Root, f *Frozen) error
	// rollback undoes a freeze that failed half-way or was confirmed too
	// late, once; the caller retries it until its own deadline.
	rollback(ctx context.Context, root *mount.Root, f *Frozen) error
	// thaw undoes a freeze of the target cgPath once: the thaw at the end
	// of a hold and the recovery of a dead holder's freeze. children are
	// the target's child cgroups that the freeze froze in place (subtree),
	// from the Frozen or from the dead holder's mark. It is idempotent and
	// takes a cgroup removed meanwhile as thawed; the caller retries it.
	thaw(ctx context.Context, root *mount.Root, cgPath string, children []string) error

	// The hold (Frozen.Hold) keeps what "held" means for the strategy
	// true, or ends when the target ends it.
	//
	// holdStart sets up the watches of a hold on h.n and says how often
	// the hold must look without a notification.
	holdStart(root *mount.Root, h *hold) (holdPolicy, error)
	// holdQuick is the cheap look that the hold makes every
	// holdPolicy.quickEvery, off the mount's thread and on a goroutine of
	// its own (re-reading a file opened by holdStart): it tells whether
	// holdCheck must run. It touches nothing else of h.
	holdQuick(h *hold) bool
	// holdCheck checks that the target is held and repairs it where the
	// strategy can, after a notification on the paths changed, or a quick
	// look that found something, or every holdPolicy.fullEvery (full).
	// It returns an error wrapping ErrTargetGone or ErrThawedByOther when
	// the hold must end; what it cannot repair it reports as a violation.
	holdCheck(root *mount.Root, h *hold, changed []string, full bool) error
}

// strategyFor returns the implementation of a strategy.
func strategyFor(s Strategy) (strategy, error) {
	switch s {
	case StrategyFreezer:
		return v1{}, nil
	case StrategyDirect:
		return direct{}, nil
	case StrategySubtree:
		return subtree{}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q", s)
}

// thaw undoes a freeze of cgPath made by strategy s, once.
func thaw(ctx context.Context, root *mount.Root, cgPath string, s Strategy, children []string) error {
	impl, err := strategyFor(s)
	if err != nil {
		return err
	}
	return impl.thaw(ctx, root, cgPath, children)
}
