package freezer

import (
	"context"
	"errors"
	"fmt"
	"path"
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
	state, err := root.ReadFile(stateFile)
	if err != nil {
		return classify(err)
	}
	if state != "THAWED" {
		return alreadyFrozen(root, t.Path, t.Path, strings.ToLower(state))
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
