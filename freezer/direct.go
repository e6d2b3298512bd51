package freezer

import (
	"context"
	"fmt"
	"path"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
)

// direct freezes through the target's own cgroup v2 cgroup.freeze. The
// kernel keeps every descendant of a frozen cgroup frozen, those created
// later and the processes that join later included.
type direct struct{}

func (direct) freeze(ctx context.Context, root *mount.Root, f *Frozen) (err error) {
	t := f.Target
	requested, frozen, err := v2State(root, t.Path)
	if err != nil {
		return classify(err)
	}
	if requested || frozen {
		return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
	}
	if err := writeMark(root, t.Path, newMark(t.procRoot, StrategyDirect)); err != nil {
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
