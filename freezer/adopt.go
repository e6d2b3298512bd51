//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// The hand-over of a hold between two processes (docs/design.md, "Roles,
// not processes"): the process that froze the target passes its lock to
// another (HandOver, over a Unix socket with SCM_RIGHTS), which rebuilds
// the freeze from the target, its mark and the cgroups (Adopt) and holds
// and thaws it. A flock(2) belongs to the open file, not to a process: the
// lock passed is the lock taken, held all along by one process or the
// other, or by the socket while it is in flight. A process that dies with
// it in hand releases it, and a watchdog recovers the target as after any
// holder's death.

// ErrNotAdoptable: the target is not in the state that a freeze handed over
// leaves: not frozen by cgfreeze's mark for its strategy, or the lock is
// not on the target's cgroup.
var ErrNotAdoptable = errors.New("the freeze cannot be taken over")

// HandOver passes the holder's lock to send (which sends it to the process
// that takes the hold over, holder, a PID in the caller's PID namespace)
// and, once send succeeded, gives the lock up without thawing: the target
// stays frozen, held by the receiver. The mark names holder first, so that
// `cgfreeze status`, and a watchdog's recovered event if holder dies, name
// the process that holds the target (the mark's holder is what tells a
// person which process to end; the lock alone proves that one holds). When
// send fails, the caller still holds the freeze and must thaw it (the mark
// names holder until then).
func (f *Frozen) HandOver(holder int, send func(lock *os.File) error) error {
	t := f.Target
	return t.fs.Do(func(root *mount.Root) error {
		if f.lock == nil {
			return fmt.Errorf("hand over the freeze of %s: the lock is released already", t.Path)
		}
		if err := f.renameHolder(root, holder); err != nil {
			return err
		}
		if err := send(f.lock); err != nil {
			return err
		}
		_ = f.lock.Close()
		f.lock = nil
		return nil
	})
}

// renameHolder rewrites the marks of the freeze with holder as the holder;
// the time of the freeze and what the marks record stay.
func (f *Frozen) renameHolder(root *mount.Root, holder int) error {
	t := f.Target
	m, err := readMark(root, t.Path)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("hand over the freeze of %s: its mark is gone", t.Path)
	}
	m.Holder = holder
	m.PIDNS, _ = procs.Namespace(t.procRoot, holder, "pid")
	m.Start, _ = procs.StartTime(t.procRoot, holder)
	if t.Strategy == StrategySubtree {
		f.mark.Holder, f.mark.PIDNS, f.mark.Start = m.Holder, m.PIDNS, m.Start
		return f.writeChildMark(root)
	}
	return writeMark(root, t.Path, *m)
}

// Adopt takes over a freeze of t that another process made and handed over
// (HandOver) with lock, the holder's lock on t's cgroup, which the returned
// Frozen owns from here on (on an error too: it is closed). processes is
// the count the freezing process reported. The freeze is rebuilt from t's
// mark and the cgroups: the strategy's frozen state must hold (v1
// freezer.self_freezing 1; v2 cgroup.freeze 1 on the target, or for
// subtree on the child its mark names), and the mark must name this
// process as its holder (HandOver names it). An error wraps ErrNotAdoptable when the target is not what a
// hand-over leaves: the caller then leaves it to a recovery.
func Adopt(t *Target, lock *os.File, processes int) (*Frozen, error) {
	impl, err := strategyFor(t.Strategy)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	f := &Frozen{Target: t, impl: impl, Processes: processes}
	err = t.fs.Do(func(root *mount.Root) error {
		if err := sameDirectory(root, t.Path, lock); err != nil {
			return err
		}
		m, err := readMark(root, t.Path)
		if err != nil {
			return err
		}
		if m == nil || m.Strategy != t.Strategy {
			return fmt.Errorf("%w: %s carries no cgfreeze mark of strategy %s", ErrNotAdoptable, t.Path, t.Strategy)
		}
		file, want := path.Join(t.Path, "cgroup.freeze"), "1"
		switch t.Strategy {
		case StrategyFreezer:
			file = path.Join(t.Path, "freezer.self_freezing")
		case StrategySubtree:
			if m.Child == "" || !IsChildName(m.Child) {
				return fmt.Errorf("%w: %s's mark names no child cgroup", ErrNotAdoptable, t.Path)
			}
			f.child, f.children = m.Child, m.Children
			file = path.Join(t.Path, m.Child, "cgroup.freeze")
		}
		got, err := root.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotAdoptable, classify(err))
		}
		if got != want {
			return fmt.Errorf("%w: %s reads %s, not %s", ErrNotAdoptable, file, got, want)
		}
		if m.Holder != os.Getpid() {
			// The supervisor named this process in the mark before it
			// handed the hold over (HandOver); a mark that names
			// another is not a freeze handed to this process.
			return fmt.Errorf("%w: %s's mark names holder %d, not this process (%d)", ErrNotAdoptable, t.Path, m.Holder, os.Getpid())
		}
		if t.Strategy == StrategySubtree {
			f.mark = *m
		}
		return nil
	})
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	f.lock = lock
	return f, nil
}

// sameDirectory checks that the open file lock is the directory of the
// cgroup cgPath (the same inode), so that the lock adopted is the target's.
func sameDirectory(root *mount.Root, cgPath string, lock *os.File) error {
	dir, err := root.Open(cgPath, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return classify(err)
	}
	defer dir.Close()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(dir.Fd()), &a); err != nil {
		return fmt.Errorf("stat %s: %w", cgPath, err)
	}
	if err := unix.Fstat(int(lock.Fd()), &b); err != nil {
		return fmt.Errorf("stat the lock passed for %s: %w", cgPath, err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return fmt.Errorf("%w: the lock passed is not on %s", ErrNotAdoptable, cgPath)
	}
	return nil
}

// Share returns t's handle and the files another process needs to Open it:
// the root directory of t's mount and, for a target resolved in its own
// cgroup namespace, that namespace. The caller closes the files once they
// are passed.
func (t *Target) Share() (Handle, []*os.File, error) {
	h := Handle{PID: t.PID, ContainerID: t.ContainerID, Version: t.Version, Path: t.Path,
		Strategy: t.Strategy, EnteredNamespace: t.EnteredNamespace, Controllers: t.spec.Controllers}
	var root *os.File
	err := t.fs.Do(func(r *mount.Root) error {
		var err error
		root, err = r.Open("/", unix.O_RDONLY|unix.O_DIRECTORY)
		return err
	})
	if err != nil {
		return Handle{}, nil, fmt.Errorf("open the root of the cgroup mount of %s: %w", t.Path, err)
	}
	files := []*os.File{root}
	if t.EnteredNamespace {
		ns, err := os.Open(t.mopts.CgroupNamespace)
		if err != nil {
			_ = root.Close()
			return Handle{}, nil, fmt.Errorf("open the target's cgroup namespace: %w", err)
		}
		files = append(files, ns)
	}
	return h, files, nil
}

// Open reaches the target that another process resolved and shared
// (Share): h and files as Share gave them (the files stay the caller's to
// close), procRoot the proc filesystem this process sees the target's
// processes in. It changes nothing and checks nothing more: the target is
// the one the other process resolved.
func Open(h Handle, procRoot string, files []*os.File) (*Target, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	want := 1
	if h.EnteredNamespace {
		want = 2
	}
	if len(files) != want || h.Path == "" || (h.Version != 1 && h.Version != 2) {
		return nil, fmt.Errorf("open a shared target: %d files for %+v", len(files), h)
	}
	spec := mount.Spec{Version: h.Version, Controllers: h.Controllers}
	mopts := mount.Options{Root: files[0]}
	if h.EnteredNamespace {
		// The mount's thread enters the namespace, as Resolve's did: a
		// migration between cgroups must be written from a namespace
		// that holds both.
		mopts.CgroupNamespace = fmt.Sprintf("/proc/self/fd/%d", files[1].Fd())
	}
	fs, err := mount.Open(spec, mopts)
	if err != nil {
		return nil, classify(err)
	}
	return &Target{PID: h.PID, ContainerID: h.ContainerID, Version: h.Version, Path: h.Path, Strategy: h.Strategy,
		EnteredNamespace: h.EnteredNamespace, procRoot: procRoot, fs: fs, spec: spec}, nil
}
