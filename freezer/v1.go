//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// v1 freezes through the cgroup v1 freezer controller: FROZEN written to the
// target's freezer.state, which freezes its whole subtree; the kernel keeps
// every descendant frozen, whatever is written below.
type v1 struct{}

// v1 freezer: freezer.state is re-read with a back-off from v1BackoffBase to
// v1MaxBackoff (v1 has no notification), FROZEN is written again every
// v1RewriteEvery reads (it kicks the tasks that have not frozen yet), and a
// FREEZING that does not settle within v1ThawAfter is broken by a short
// thaw, the way runc does.
const (
	v1BackoffBase  = 50 * time.Microsecond
	v1MaxBackoff   = time.Millisecond
	v1RewriteEvery = 8
	v1ThawAfter    = 500 * time.Millisecond
	v1ThawPause    = 10 * time.Millisecond
)

func (v1) freeze(ctx context.Context, root *mount.Root, f *Frozen) (err error) {
	t := f.Target
	stateFile := path.Join(t.Path, "freezer.state")
	if !f.thawedSeen {
		state, err := root.ReadFile(stateFile)
		if err != nil {
			return classify(err)
		}
		if state != "THAWED" {
			return alreadyFrozen(root, t.Path, t.Path, strings.ToLower(state))
		}
	}
	if err := writeMark(root, t.Path, newMark(t.procRoot, StrategyFreezer)); err != nil {
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
	write := func() error {
		if err := root.WriteFile(stateFile, "FROZEN"); err != nil {
			return classify(err)
		}
		return faults.Point("freeze:written")
	}
	if err := write(); err != nil {
		return err
	}
	since, backoff := time.Now(), v1BackoffBase
	for i := 1; ; i++ {
		state, err := root.ReadFile(stateFile)
		if err != nil {
			return classify(err)
		}
		if state == "FROZEN" {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s still reads %s after %d tries (processes keep forking, or are in uninterruptible sleep): %w", ErrFreezeFailed, stateFile, state, i, context.Cause(ctx))
		}
		switch {
		case time.Since(since) >= v1ThawAfter:
			// Processes that keep forking can hold FREEZING for long; a
			// brief thaw lets them settle before the next try.
			if err := root.WriteFile(stateFile, "THAWED"); err != nil {
				return classify(err)
			}
			threadSleep(v1ThawPause)
			if err := write(); err != nil {
				return err
			}
			since, backoff = time.Now(), v1BackoffBase
			continue
		case i%v1RewriteEvery == 0:
			if err := write(); err != nil {
				return err
			}
		}
		threadSleep(backoff)
		backoff = min(2*backoff, v1MaxBackoff)
	}
}

func (s v1) rollback(ctx context.Context, root *mount.Root, f *Frozen) error {
	return s.thaw(ctx, root, f.Target.Path, nil)
}

func (v1) thaw(ctx context.Context, root *mount.Root, cgPath string, _ []string) error {
	stateFile := path.Join(cgPath, "freezer.state")
	if err := root.WriteFile(stateFile, "THAWED"); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return nil
		}
		return classify(err)
	}
	if err := faults.Point("thaw:written"); err != nil {
		return err
	}
	for {
		// freezer.state shows the combined state with the ancestors;
		// self_freezing is this cgroup's own.
		self, err := root.ReadFile(path.Join(cgPath, "freezer.self_freezing"))
		if err != nil {
			return ignoreCgroupRemoved(err)
		}
		if self == "0" {
			return ignoreCgroupRemoved(root.RemoveXattr(cgPath, markXattr))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: self_freezing still 1 after writing THAWED", cgPath)
		}
		time.Sleep(time.Millisecond)
	}
}

// threadSleep sleeps on the calling OS thread, the mount's: Go's timers
// round a sleep below a millisecond up to about one (the runtime's poller
// waits in whole milliseconds), which the v1 back-off would pay at every
// read.
func threadSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		var rem unix.Timespec
		if err := unix.Nanosleep(&ts, &rem); !errors.Is(err, unix.EINTR) {
			return
		}
		ts = rem
	}
}

// The v1 hold. v1 notifies nothing of its own, but the owner's thaw (runc
// thaws a paused v1 container before it kills it) is a write of THAWED to
// the target's freezer.state, and the VFS raises inotify's IN_MODIFY on
// every write(2), through whichever mount: the hold watches it and sees the
// thaw at once. The full check runs every v1HoldFullEvery and at each
// write: it sees whether a process is left (a frozen v1 task cannot exit,
// not even on SIGKILL, so the cgroup empties only by migration or after a
// thaw, which the write shows first). Without inotify (or on a fake
// hierarchy, whose files are rewritten by renaming), the quick look
// re-reads freezer.self_freezing and freezer.state from files kept open
// every v1HoldEvery instead. The hold's cost is its wake-ups, not its
// reads (docs/design.md, "The hold").
//
// Releasing an inotify instance waits for an SRCU grace period (fsnotify's
// mark reaper) when it still has watches: 5 to 20 ms added to every exit
// here, on the path from SIGTERM to the caller seeing cgfreeze end. The
// Notifier removes its watches before it closes the instance, which leaves
// the close nothing to wait for.
const (
	v1HoldEvery     = 100 * time.Millisecond
	v1HoldFullEvery = time.Second
)

// A v1 hold: held means the target's own freezer.self_freezing is 1 and
// freezer.state reads FROZEN; the kernel keeps every descendant, those
// created later and the processes that join later frozen, so there is
// nothing to repair, only the end of the hold to see.
func (v1) holdStart(root *mount.Root, h *hold) (holdPolicy, error) {
	t := h.f.Target
	var err error
	if h.selfFreezing, err = h.probe(root, t.Path, "freezer.self_freezing"); err != nil {
		return holdPolicy{}, err
	}
	if h.state, err = h.probe(root, t.Path, "freezer.state"); err != nil {
		return holdPolicy{}, err
	}
	if !root.IsFake() {
		if p, err := mount.OpenFileProbe(v1MemberFile(t)); err == nil {
			h.probes = append(h.probes, p)
			var buf [v1MemberMax]byte
			if b, err := p.Read(buf[:]); err == nil && len(b) < len(buf) {
				h.member, h.memberFile = string(b), p
			}
		}
	}
	if !root.IsFake() && h.n.AddWrites(root, path.Join(t.Path, "freezer.state")) == nil {
		return holdPolicy{fullEvery: v1HoldFullEvery}, nil
	}
	return holdPolicy{quickEvery: v1HoldEvery, fullEvery: v1HoldFullEvery}, nil
}

// v1MemberMax bounds the /proc/<PID>/cgroup that the hold keeps to compare
// (a dozen hierarchies' lines); a longer one is not kept, and the full
// check lists the target's processes instead.
const v1MemberMax = 4096

// sameMember tells whether the process the target was resolved from still
// reads the /proc/<PID>/cgroup it read when the hold started; once it does
// not, the hold stops asking.
func (h *hold) sameMember() bool {
	if h.memberFile == nil {
		return false
	}
	var buf [v1MemberMax]byte
	if b, err := h.memberFile.Read(buf[:]); err == nil && string(b) == h.member {
		return true
	}
	h.member, h.memberFile = "", nil
	return false
}

// holdQuick tells whether the target may no longer be held: anything but
// self_freezing 1 and FROZEN (a read error too) asks for the full check.
func (v1) holdQuick(h *hold) bool {
	var buf [16]byte
	self, err := h.selfFreezing.Read(buf[:])
	if err != nil || string(self) != "1" {
		return true
	}
	state, err := h.state.Read(buf[:])
	return err != nil || string(state) != "FROZEN"
}

func (v v1) holdCheck(root *mount.Root, h *hold, _ []string, _ bool) error {
	t := h.f.Target
	// The periodic check when nothing is amiss reads only files kept open,
	// with the mount package's raw reads: the quick look again, and the
	// resolved process's /proc/<PID>/cgroup. A system call made the usual
	// way would wake the Go runtime's monitor thread, which then polls
	// every 20 µs for as long as the check takes.
	if !v.holdQuick(h) && h.sameMember() {
		h.frozenOrLate(t.Path, true)
		return nil
	}
	self, err := readGone(root, t.Path, "freezer.self_freezing")
	if err != nil {
		return err
	}
	if self != "1" {
		return fmt.Errorf("%w: %s/freezer.self_freezing reads %s (its runtime or owner wrote THAWED)", ErrThawedByOther, t.Path, self)
	}
	state, err := readGone(root, t.Path, "freezer.state")
	if err != nil {
		return err
	}
	h.frozenOrLate(t.Path, state == "FROZEN")
	if h.sameMember() {
		// The process the target was resolved from is still there: a
		// read of one small file where the kernel would build and sort
		// the list of every process of the tree (v1's cgroup.procs),
		// some 1.5 ms for 1000 processes, every v1HoldFullEvery.
		return nil
	}
	populated, err := treePopulated(root, t.Path)
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return gone(t.Path, "was removed")
		}
		return classify(err)
	}
	if !populated {
		return gone(t.Path, "has no process left")
	}
	return nil
}

// v1MemberFile is /proc/<PID>/cgroup of the process the target was
// resolved from.
func v1MemberFile(t *Target) string {
	return filepath.Join(t.procRoot, strconv.Itoa(t.PID), "cgroup")
}
