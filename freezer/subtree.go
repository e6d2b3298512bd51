package freezer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
)

// subtree freezes a target whose own cgroup.freeze may not be written (the
// root of a delegated cgroup namespace): it creates a child cgroup
// (ChildName), freezes it while it is still empty, moves the target's own
// processes into it, and freezes the target's other child cgroups where
// they are (those frozen already belong to someone else and are left
// alone). Nothing freezes the target's cgroup itself, so what joins it or
// is created below it later runs unless the hold repairs it.
type subtree struct{}

func (subtree) freeze(ctx context.Context, root *mount.Root, f *Frozen) (err error) {
	t := f.Target
	child := path.Join(t.Path, ChildName)
	if ok, err := root.Exists(child); err != nil {
		return err
	} else if ok {
		return alreadyFrozen(root, child, t.Path, "frozen through "+child)
	}
	requested, frozen, err := v2State(root, t.Path)
	if err != nil {
		return classify(err)
	}
	if requested || frozen {
		return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
	}
	// The child cgroups of the target are frozen where they are; those
	// frozen already belong to someone else and are left alone.
	names, err := root.Children(t.Path)
	if err != nil {
		return classify(err)
	}
	for _, name := range names {
		req, err := root.ReadFile(path.Join(t.Path, name, "cgroup.freeze"))
		if err != nil {
			return classify(err)
		}
		if req == "0" {
			f.children = append(f.children, name)
		}
	}

	if err := root.Mkdir(child); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return alreadyFrozen(root, child, t.Path, "frozen through "+child)
		}
		return classify(err)
	}
	defer func() {
		if err != nil {
			err = f.rollback(root, err)
		}
	}()
	if err := faults.Point("freeze:child-created"); err != nil {
		return err
	}
	m := newMark(t.procRoot, StrategySubtree)
	m.Children = f.children
	if err := writeMark(root, child, m); err != nil {
		return err
	}
	if err := faults.Point("freeze:marked"); err != nil {
		return err
	}
	// The destination is frozen while still empty, so that every process
	// stops the moment it arrives (as crun migrates).
	if err := root.WriteFile(path.Join(child, "cgroup.freeze"), "1"); err != nil {
		return classify(err)
	}
	if err := waitFrozen(ctx, root, child, true); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	if err := faults.Point("freeze:child-frozen"); err != nil {
		return err
	}
	if f.moved, err = migrate(ctx, root, t.Path, child, "freeze:half-migrated"); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	if err := faults.Point("freeze:migrated"); err != nil {
		return err
	}
	for _, name := range f.children {
		if err := root.WriteFile(path.Join(t.Path, name, "cgroup.freeze"), "1"); err != nil {
			return classify(err)
		}
	}
	if err := faults.Point("freeze:written"); err != nil {
		return err
	}
	for _, name := range append([]string{ChildName}, f.children...) {
		if err := waitTreeFrozen(ctx, root, path.Join(t.Path, name)); err != nil {
			return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
		}
	}
	return nil
}

func (s subtree) rollback(ctx context.Context, root *mount.Root, f *Frozen) error {
	return s.thaw(ctx, root, f.Target.Path, f.children)
}

func (subtree) thaw(ctx context.Context, root *mount.Root, cgPath string, children []string) error {
	child := path.Join(cgPath, ChildName)
	for _, name := range children {
		if err := root.WriteFile(path.Join(cgPath, name, "cgroup.freeze"), "0"); ignoreCgroupRemoved(err) != nil {
			return classify(err)
		}
	}
	exists, err := root.Exists(child)
	if err != nil {
		return err
	}
	if exists {
		if err := root.WriteFile(path.Join(child, "cgroup.freeze"), "0"); ignoreCgroupRemoved(err) != nil {
			return classify(err)
		}
		if err := faults.Point("thaw:written"); err != nil {
			return err
		}
		if _, err := migrate(ctx, root, child, cgPath, "thaw:half-restored"); ignoreCgroupRemoved(err) != nil {
			return err
		}
		if err := faults.Point("thaw:restored"); err != nil {
			return err
		}
		if err := root.Rmdir(child); ignoreCgroupRemoved(err) != nil {
			return err
		}
	}
	for _, name := range children {
		if err := waitFrozen(ctx, root, path.Join(cgPath, name), false); ignoreCgroupRemoved(err) != nil {
			return err
		}
	}
	return nil
}
