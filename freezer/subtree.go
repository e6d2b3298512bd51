package freezer

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// subtree freezes a target whose own cgroup.freeze may not be written (the
// root of a delegated cgroup namespace): it creates a child cgroup with a
// name of its own (ChildPrefix and random digits), freezes it while it is
// still empty, moves the target's own processes into it, and freezes the
// target's other child cgroups where they are (those frozen already belong
// to someone else and are left alone). Nothing freezes the target's cgroup
// itself, so what joins it or is created below it later runs unless the
// hold repairs it.
//
// Ownership is by proof (mark.go): before the mkdir, the target gets a mark
// naming the child to be made (the intent), and the child gets a mark
// once made. Thaw and recovery move, thaw and remove only the child the
// marks name; a workload's own child cgroup, whatever its name (a
// "cgfreeze" child, a "cgfreeze/sub" holding a process), is one of the
// target's children like any other: frozen in place if it was thawed,
// thawed again at the end, never moved out or removed.
type subtree struct{}

func (subtree) freeze(ctx context.Context, root *mount.Root, f *Frozen) (err error) {
	t := f.Target
	requested, frozen, err := v2State(root, t.Path)
	if err != nil {
		return classify(err)
	}
	if requested || frozen {
		return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
	}
	// The child cgroups of the target are frozen where they are; those
	// frozen already belong to someone else and are left alone, and one
	// removed meanwhile is no error.
	names, err := root.Children(t.Path)
	if err != nil {
		return classify(err)
	}
	for _, name := range names {
		req, err := root.ReadFile(path.Join(t.Path, name, "cgroup.freeze"))
		if ignoreCgroupRemoved(err) == nil && err != nil {
			continue
		}
		if err != nil {
			return classify(err)
		}
		if req == "0" {
			f.children = append(f.children, name)
		}
	}

	name, err := newChildName()
	if err != nil {
		return err
	}
	m := newMark(t.procRoot, StrategySubtree)
	m.Children, m.Child = f.children, name
	// The intent: from here on the marks name the child, whether or not
	// it is made.
	if err := writeMark(root, t.Path, m); err != nil {
		return err
	}
	f.child = name
	defer func() {
		if err != nil {
			err = f.rollback(root, err)
		}
	}()
	child := path.Join(t.Path, name)
	if err := root.Mkdir(child); err != nil {
		return mkdirRefused(child, err)
	}
	if err := faults.Point("freeze:child-created"); err != nil {
		return err
	}
	if err := writeMark(root, child, childMark(m)); err != nil {
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
		if errors.Is(err, ErrUnsafeTarget) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	if err := faults.Point("freeze:migrated"); err != nil {
		return err
	}
	for _, name := range f.children {
		if err := root.WriteFile(path.Join(t.Path, name, "cgroup.freeze"), "1"); ignoreCgroupRemoved(err) != nil {
			return classify(err)
		}
	}
	if err := faults.Point("freeze:written"); err != nil {
		return err
	}
	if err := waitTreeFrozen(ctx, root, child); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	for _, name := range f.children {
		if err := waitTreeFrozen(ctx, root, path.Join(t.Path, name)); ignoreCgroupRemoved(err) != nil {
			return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
		}
	}
	return nil
}

// mkdirRefused explains a failed mkdir of the child. The kernel refuses a
// new cgroup with EAGAIN when the target or an ancestor has reached
// cgroup.max.descendants or cgroup.max.depth; that, and any refusal other
// than a lack of privilege or a read-only mount, is a refusal of the target
// (ErrUnsafeTarget): nothing was changed but the intent, which the rollback
// removes.
func mkdirRefused(child string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.EROFS):
		return classify(err)
	case errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("%w: the kernel refused to create the cgroup %s that the subtree strategy needs (%w): the target or one of its ancestors has reached cgroup.max.descendants or cgroup.max.depth", ErrUnsafeTarget, child, err)
	}
	return fmt.Errorf("%w: the kernel refused to create the cgroup %s that the subtree strategy needs: %w", ErrUnsafeTarget, child, err)
}

func (s subtree) rollback(ctx context.Context, root *mount.Root, f *Frozen) error {
	return s.thaw(ctx, root, f.Target.Path, f.children)
}

// thaw thaws the children frozen in place, then moves the processes of
// every child the marks prove to be cgfreeze's back into the target,
// removes those children and, last, the target's mark: a thaw that fails
// half-way leaves the intent for the next try or for Recover.
func (subtree) thaw(ctx context.Context, root *mount.Root, cgPath string, children []string) error {
	// The target's mark names the child of a freeze made with the intent;
	// only without one are the children's marks read.
	o, err := owned(root, cgPath, false)
	if err == nil && (o.mark == nil || o.mark.Child == "") {
		o, err = owned(root, cgPath, true)
	}
	if err != nil {
		return ignoreCgroupRemoved(err)
	}
	for _, name := range children {
		if err := root.WriteFile(path.Join(cgPath, name, "cgroup.freeze"), "0"); ignoreCgroupRemoved(err) != nil {
			return classify(err)
		}
	}
	for _, name := range o.children {
		child := path.Join(cgPath, name)
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
	if o.mark != nil {
		return ignoreCgroupRemoved(root.RemoveXattr(cgPath, markXattr))
	}
	return nil
}
