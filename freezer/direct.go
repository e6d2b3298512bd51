//go:build linux

package freezer

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
)

// direct freezes through the target's own cgroup v2 cgroup.freeze. The
// kernel keeps every descendant of a frozen cgroup frozen, those created
// later and the processes that join later included.
type direct struct{}

func (direct) freeze(ctx context.Context, root *mount.Root, f *Frozen) (err error) {
	t := f.Target
	if !f.thawedSeen {
		requested, frozen, err := v2State(root, t.Path)
		if err != nil {
			return classify(err)
		}
		if requested || frozen {
			return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
		}
	}
	if err := writeMarkAt(root, f.lock, t.Path, newMark(t.procRoot, StrategyDirect)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = f.rollback(root, err)
		}
	}()
	if err := faults.Point("freeze:marked"); err != nil {
		return err
	}
	if err := root.WriteFile(path.Join(t.Path, "cgroup.freeze"), "1"); err != nil {
		return classify(err)
	}
	if err := faults.Point("freeze:written"); err != nil {
		return err
	}
	if err := waitTreeFrozen(ctx, root, t.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	return nil
}

func (s direct) rollback(ctx context.Context, root *mount.Root, f *Frozen) error {
	return s.thaw(ctx, root, f.Target.Path, nil)
}

func (direct) thaw(ctx context.Context, root *mount.Root, cgPath string, _ []string) error {
	if err := root.WriteFile(path.Join(cgPath, "cgroup.freeze"), "0"); err != nil {
		return ignoreCgroupRemoved(classify(err))
	}
	if err := faults.Point("thaw:written"); err != nil {
		return err
	}
	if err := waitFrozen(ctx, root, cgPath, false); err != nil {
		return ignoreCgroupRemoved(err)
	}
	return ignoreCgroupRemoved(root.RemoveXattr(cgPath, markXattr))
}

// directHoldFallback is how often a direct hold checks without a
// notification, in case one is missed: everything it watches for is
// notified on the target's cgroup.events.
const directHoldFallback = time.Second

// A direct hold: held means the target's own cgroup.freeze is 1 and its
// cgroup.events says frozen; the kernel keeps every descendant, those
// created later and the processes that join later frozen, so there is
// nothing to repair, only the end of the hold to see: the target's
// cgroup.events notifies its emptying (populated 0), its removal, and a
// thaw by its runtime or owner (frozen 0).
func (direct) holdStart(root *mount.Root, h *hold) (holdPolicy, error) {
	t := h.f.Target
	if err := h.n.AddFile(root, path.Join(t.Path, "cgroup.events")); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return holdPolicy{}, gone(t.Path, "was removed")
		}
		return holdPolicy{}, classify(err)
	}
	var err error
	if h.freeze, err = h.probe(root, t.Path, "cgroup.freeze"); err != nil {
		return holdPolicy{}, err
	}
	if h.events, err = h.probe(root, t.Path, "cgroup.events"); err != nil {
		return holdPolicy{}, err
	}
	return holdPolicy{fullEvery: directHoldFallback}, nil
}

func (direct) holdQuick(*hold) bool { return false }

func (direct) holdCheck(root *mount.Root, h *hold, _ []string, _ bool) error {
	t := h.f.Target
	// When all is well, the check reads only the files kept open, with the
	// mount package's raw reads (which leave the Go runtime's monitor
	// thread asleep, see v1's holdCheck); anything else is read anew below.
	var buf [128]byte
	if req, err := h.freeze.Read(buf[:]); err == nil && string(req) == "1" {
		if ev, err := h.events.Read(buf[:]); err == nil {
			if populated, frozen, err := parseEvents(t.Path, string(ev)); err == nil && populated && frozen {
				h.frozenOrLate(t.Path, true)
				return nil
			}
		}
	}
	req, err := readGone(root, t.Path, "cgroup.freeze")
	if err != nil {
		return err
	}
	if req != "1" {
		return fmt.Errorf("%w: %s/cgroup.freeze reads %s (its runtime or owner thawed it)", ErrThawedByOther, t.Path, req)
	}
	populated, frozen, err := readEvents(root, t.Path)
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return gone(t.Path, "was removed")
		}
		return classify(err)
	}
	if !populated {
		return gone(t.Path, "has no process left")
	}
	h.frozenOrLate(t.Path, frozen)
	return nil
}
