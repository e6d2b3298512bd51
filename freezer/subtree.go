//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

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
	if !f.thawedSeen {
		requested, frozen, err := v2State(root, t.Path)
		if err != nil {
			return classify(err)
		}
		if requested || frozen {
			return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
		}
	}
	name, err := newChildName()
	if err != nil {
		return err
	}
	// The child cgroups of the target are frozen where they are; those
	// frozen already belong to someone else and are left alone. A child
	// removed meanwhile (a workload that makes and removes cgroups) is
	// no error.
	seen := map[string]bool{name: true}
	if _, err := f.addChildren(root, seen); err != nil {
		return err
	}

	f.child = name
	f.mark = newMark(t.procRoot, StrategySubtree)
	f.mark.Child = name
	// The intent: from here on the marks name the child, whether or not
	// it is made.
	if err := f.writeTargetMark(root); err != nil {
		return err
	}
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
	if err := f.writeChildMark(root); err != nil {
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
	// Child cgroups created while the others froze are frozen too, until
	// a listing finds none new: a freeze is not confirmed while one runs.
	for {
		added, err := f.addChildren(root, seen)
		if err != nil {
			return err
		}
		if len(added) == 0 {
			break
		}
		if err := f.writeChildMark(root); err != nil {
			return err
		}
		for _, name := range added {
			if err := root.WriteFile(path.Join(t.Path, name, "cgroup.freeze"), "1"); ignoreCgroupRemoved(err) != nil {
				return classify(err)
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: child cgroups keep appearing in %s: %w", ErrFreezeFailed, t.Path, context.Cause(ctx))
		}
	}
	if err := faults.Point("freeze:written"); err != nil {
		return err
	}
	for _, name := range append([]string{f.child}, f.children...) {
		err := waitTreeFrozen(ctx, root, path.Join(t.Path, name))
		if name != f.child {
			err = ignoreCgroupRemoved(err)
		}
		if err != nil {
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

// addChildren lists the target's child cgroups not in seen, adds them to
// seen, and those not frozen (cgroup.freeze 0) to f.children, which it
// returns. A child removed meanwhile is left out.
func (f *Frozen) addChildren(root *mount.Root, seen map[string]bool) (added []string, err error) {
	t := f.Target
	names, err := root.Children(t.Path)
	if err != nil {
		return nil, classify(err)
	}
	for _, name := range names {
		if seen[name] {
			continue
		}
		req, err := root.ReadFile(path.Join(t.Path, name, "cgroup.freeze"))
		if err != nil {
			if ignoreCgroupRemoved(err) == nil {
				continue
			}
			return nil, classify(err)
		}
		seen[name] = true
		if req == "0" {
			f.children = append(f.children, name)
			added = append(added, name)
		}
	}
	return added, nil
}

// writeTargetMark writes the mark on the target, naming the child (the
// intent) and the child cgroups frozen in place so far.
func (f *Frozen) writeTargetMark(root *mount.Root) error {
	m := f.mark
	m.Children = slices.Clone(f.children)
	return writeMark(root, f.Target.Path, m)
}

// writeChildMark writes the marks with the child cgroups frozen in place so
// far, on the target first and then on the cgfreeze child: a dead holder's
// recovery thaws those (from the target's mark, or from the child's when
// that is all there is).
func (f *Frozen) writeChildMark(root *mount.Root) error {
	if err := f.writeTargetMark(root); err != nil {
		return err
	}
	m := childMark(f.mark)
	m.Children = slices.Clone(f.children)
	return writeMark(root, path.Join(f.Target.Path, f.child), m)
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

// PrepareThaw lets the kernel start now what the thaw would first wait
// for, and returns at once; the thaw comes next (the caller's hold ended).
// For the subtree strategy that is an RCU grace period: the first
// migration after a quiet while waits for one (cgroup_threadgroup_rwsem's
// rcu_sync_enter; 5 to 15 ms here, most of a small thaw), and every
// migration within a grace period of the last one does not. It makes such
// a migration, one that moves nothing, on a goroutine of its own while the
// hold ends, and the thaw's moves find the grace period paid or under
// way: the caller's own PID written to its own cgroup.procs (Primer),
// which needs no lock of the mount's, so that the thaw's first calls do
// not wait for it to return and hand the lock over. Where the caller's
// own cgroup cannot be reached (no cgroup2 mount of its own), it writes a
// process of the child to the child's own cgroup.procs instead: the read
// of the PID from the child and its write back to the child are one call
// of the mount's (FS.Do: its thread, or its lock), which the thaw's calls
// cannot interleave: wherever it lands among them, it only writes a
// process that is in the child at that moment to the child, and never
// puts back one that the thaw moved out. The window is every migration's
// (listed, then written): a PID freed and given to another process in
// between. After the mount is closed it fails, harmlessly. For the other
// strategies, or without a process in the child, it does nothing. It may
// be called from any goroutine, once the freeze is confirmed; what it does
// changes nothing the thaw relies on, and its errors (a child removed
// meanwhile, the mount closed) are ignored.
func (f *Frozen) PrepareThaw() {
	if f.child == "" {
		return
	}
	procs := path.Join(f.Target.Path, f.child, "cgroup.procs")
	go func() {
		if p, err := openOwnPrimer(); err == nil {
			p.Prime()
			_ = p.Close()
			return
		}
		_ = f.Target.fs.Do(func(root *mount.Root) error {
			pid, err := firstPID(root, procs)
			if err != nil {
				return err
			}
			w, err := root.OpenWrite(procs)
			if err != nil {
				return err
			}
			defer func() { _ = w.Close() }()
			_, err = w.Write(pid)
			return err
		})
	}()
}

// firstPID returns the first process that procs (a cgroup.procs) lists,
// from its first bytes (the kernel lists a cgroup's processes as they are
// read). A process outside the reader's PID namespace, listed as 0, or an
// empty list is an error: writing 0 would move the writer itself.
func firstPID(root *mount.Root, procs string) ([]byte, error) {
	f, err := root.Open(procs, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf [32]byte
	n, err := f.Read(buf[:])
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(buf[:n]), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err != nil || pid <= 0 {
		return nil, fmt.Errorf("%s: no process to write first (%q)", procs, first)
	}
	return []byte(strings.TrimSpace(first)), nil
}

// The subtree hold. The target's own cgroup is not frozen, and cgroupfs
// notifies no change of a cgroup's own processes (populated covers the
// whole subtree). A process that joins it by a write to its cgroup.procs
// (runc exec up to 1.3, `echo PID > cgroup.procs`) is seen at once through
// inotify (IN_MODIFY, which the VFS raises on every write); one that the
// kernel puts there without a write (clone3 with CLONE_INTO_CGROUP: crun
// exec, runc exec from 1.4 on v2) only by a re-read of cgroup.procs every
// subtreeJoinScan, off the mount's thread, from a file opened once (a
// pread of an empty cgroup.procs, about a microsecond; each wake-up costs
// about 100 to 180 µs of CPU on the test machine, which is the hold's idle
// cost). Child cgroups created or removed are seen through inotify on the
// target's directory, a child thawed through its cgroup.events;
// everything is checked again every subtreeRescan in case a notification
// was missed or inotify is missing.
const (
	subtreeJoinScan = 50 * time.Millisecond
	subtreeRescan   = time.Second
)

// A subtree hold: held means the cgfreeze child's cgroup.freeze is 1 (a 0
// written there, or the child removed, is the owner thawing the target: the
// hold ends), the target's own cgroup holds no process (one that joins is
// moved into the frozen child), and every child cgroup of the target is
// frozen (one created during the hold, or thawed by another tool, is frozen
// and added to the children the thaw restores to 0; one another tool froze
// is left to it until it thaws). A child that vanishes is dropped.
func (subtree) holdStart(root *mount.Root, h *hold) (holdPolicy, error) {
	t := h.f.Target
	child := path.Join(t.Path, h.f.child)
	if err := h.n.AddFile(root, path.Join(t.Path, "cgroup.events")); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return holdPolicy{}, gone(t.Path, "was removed")
		}
		return holdPolicy{}, classify(err)
	}
	if err := h.n.AddFile(root, path.Join(child, "cgroup.events")); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return holdPolicy{}, fmt.Errorf("%w: %s was removed by another", ErrThawedByOther, child)
		}
		return holdPolicy{}, classify(err)
	}
	procs, err := h.probe(root, t.Path, "cgroup.procs")
	if err != nil {
		return holdPolicy{}, err
	}
	h.procs = procs
	// Without inotify (no /proc), new children wait for the rescan, and
	// joins for the join scan.
	_ = h.n.AddDir(root, t.Path)
	_ = h.n.AddWrites(root, path.Join(t.Path, "cgroup.procs"))
	names, err := root.Children(t.Path)
	if err != nil {
		return holdPolicy{}, classify(err)
	}
	// The children the freeze left to another tool are known as that
	// tool's; those it froze as cgfreeze's; one created since is left to
	// the first check, which sees it as created.
	for _, name := range names {
		if name == h.f.child {
			continue
		}
		ours := slices.Contains(h.f.children, name)
		if !ours {
			if req, err := root.ReadFile(path.Join(t.Path, name, "cgroup.freeze")); err != nil || req != "1" {
				continue
			}
		}
		if err := h.n.AddFile(root, path.Join(t.Path, name, "cgroup.events")); err != nil {
			continue // removed meanwhile
		}
		h.known[name] = ours
	}
	return holdPolicy{quickEvery: subtreeJoinScan, fullEvery: subtreeRescan}, nil
}

func (subtree) holdQuick(h *hold) bool {
	var buf [16]byte
	b, err := h.procs.Read(buf[:])
	return err != nil || len(b) != 0
}

func (s subtree) holdCheck(root *mount.Root, h *hold, changed []string, full bool) error {
	t := h.f.Target
	child := path.Join(t.Path, h.f.child)
	populated, _, err := readEvents(root, t.Path)
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return gone(t.Path, "was removed")
		}
		return classify(err)
	}
	if !populated {
		return gone(t.Path, "has no process left")
	}
	req, err := root.ReadFile(path.Join(child, "cgroup.freeze"))
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return fmt.Errorf("%w: %s was removed by another", ErrThawedByOther, child)
		}
		return classify(err)
	}
	if req != "1" {
		return fmt.Errorf("%w: %s/cgroup.freeze reads %s (someone thawed cgfreeze's child)", ErrThawedByOther, child, req)
	}
	if frozen, err := readFrozen(root, child); err == nil {
		h.frozenOrLate(child, frozen)
	}
	joinSeen := time.Unix(0, h.lastQuiet.Load())
	if slices.Contains(changed, path.Join(t.Path, "cgroup.procs")) {
		joinSeen = h.woke // a write to cgroup.procs, notified
	}
	if err := s.holdJoins(root, h, joinSeen); err != nil {
		return err
	}
	names := map[string]bool{}
	if full || slices.Contains(changed, t.Path) {
		current, err := root.Children(t.Path)
		if err != nil {
			if ignoreCgroupRemoved(err) == nil {
				return gone(t.Path, "was removed")
			}
			return classify(err)
		}
		for _, name := range current {
			names[name] = true
		}
		for name := range h.known {
			if !names[name] {
				s.forget(root, h, name)
			}
		}
	}
	prefix := t.Path + "/"
	if t.Path == "/" {
		prefix = "/"
	}
	for _, p := range changed {
		if name, ok := strings.CutSuffix(strings.TrimPrefix(p, prefix), "/cgroup.events"); ok && strings.HasPrefix(p, prefix) && !strings.Contains(name, "/") {
			names[name] = true
		}
	}
	delete(names, h.f.child)
	for name := range names {
		s.holdChild(root, h, name)
	}
	return nil
}

// holdJoins moves the processes that joined the target's own cgroup into
// the frozen child.
// since is when the join could first have been seen: the notification of
// a write to cgroup.procs, or the last scan that found it empty.
func (subtree) holdJoins(root *mount.Root, h *hold, since time.Time) error {
	t := h.f.Target
	content, err := readGone(root, t.Path, "cgroup.procs")
	if err != nil {
		return err
	}
	if content == "" {
		h.cleared("joined", t.Path)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdRepairLimit)
	defer cancel()
	moved, err := migrate(ctx, root, t.Path, path.Join(t.Path, h.f.child), "hold:half-migrated")
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return nil // the next check sees what was removed
		}
		h.violation("joined", t.Path, fmt.Errorf("processes that joined %s cannot be moved into %s: %w", t.Path, h.f.child, err))
		return nil
	}
	if moved > 0 {
		h.repaired("joined", t.Path, moved, since)
	}
	h.lastQuiet.Store(time.Now().UnixNano())
	return nil
}

// holdChild freezes the target's child cgroup name when it is not frozen:
// created during the hold, or thawed by someone.
func (s subtree) holdChild(root *mount.Root, h *hold, name string) {
	f, t := h.f, h.f.Target
	cg := path.Join(t.Path, name)
	ours, known := h.known[name]
	req, err := root.ReadFile(path.Join(cg, "cgroup.freeze"))
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			s.forget(root, h, name)
			return
		}
		h.violation("child_unreadable", cg, classify(err))
		return
	}
	if !known {
		if err := h.n.AddFile(root, path.Join(cg, "cgroup.events")); err != nil {
			if ignoreCgroupRemoved(err) == nil {
				return
			}
			h.violation("child_created", cg, classify(err))
			return
		}
		h.known[name] = false
	}
	if req == "1" {
		if ours {
			if frozen, err := readFrozen(root, cg); err == nil {
				h.frozenOrLate(cg, frozen)
			}
		}
		// Else another tool froze it: left to that tool until it
		// thaws it.
		return
	}
	what := "child_thawed"
	if !known {
		what = "child_created"
	}
	if !ours {
		// The mark first: a holder that dies from here on leaves
		// a mark that thaws this child too.
		f.children = append(f.children, name)
		h.known[name] = true
		if err := f.writeChildMark(root); err != nil {
			h.violation("mark", path.Join(t.Path, f.child), err)
		}
	}
	if err := root.WriteFile(path.Join(cg, "cgroup.freeze"), "1"); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			s.forget(root, h, name)
			return
		}
		h.violation(what, cg, classify(err))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdRepairLimit)
	defer cancel()
	if err := waitTreeFrozen(ctx, root, cg); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			s.forget(root, h, name)
			return
		}
		h.violation(what, cg, err)
		return
	}
	n, _ := countProcesses(root, cg)
	h.repaired(what, cg, n, h.woke)
}

// forget drops a child cgroup that vanished: not an error.
func (subtree) forget(root *mount.Root, h *hold, name string) {
	f, t := h.f, h.f.Target
	cg := path.Join(t.Path, name)
	delete(h.known, name)
	delete(h.unfrozenSince, cg)
	h.n.Remove(path.Join(cg, "cgroup.events"))
	for k := range h.violated {
		if strings.HasSuffix(k, " "+cg) {
			delete(h.violated, k)
		}
	}
	if i := slices.Index(f.children, name); i >= 0 {
		f.children = slices.Delete(f.children, i, i+1)
		_ = f.writeChildMark(root)
	}
}
