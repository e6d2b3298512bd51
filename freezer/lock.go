//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// The holder's lock is a flock(2) on the target cgroup's directory. It is
// kept on the inode, which every mount of the hierarchy shares, so a second
// cgfreeze in another container, PID namespace or mount sees it too, and
// the kernel drops it when the holder dies, however it dies.

// errHeld reports a lock that another process holds.
var errHeld = errors.New("held by another process")

// lockGrace is how long Freeze and Recover wait for a lock that is taken:
// long enough to ride over a `cgfreeze status` probing it, short enough to
// refuse a live holder at once.
const lockGrace = 100 * time.Millisecond

// lockTarget takes the holder's lock on cgPath without waiting.
func lockTarget(root *mount.Root, cgPath string) (*os.File, error) {
	dir, err := root.Open(cgPath, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, classify(err)
	}
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = dir.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errHeld
		}
		return nil, fmt.Errorf("lock %s: %w", cgPath, err)
	}
	return dir, nil
}

// lockTargetWait takes the lock, retrying until wait has passed: for a
// watchdog whose holder has just died, while the kernel releases the lock.
func lockTargetWait(root *mount.Root, cgPath string, wait time.Duration) (*os.File, error) {
	deadline := time.Now().Add(wait)
	for {
		lock, err := lockTarget(root, cgPath)
		if !errors.Is(err, errHeld) || time.Now().After(deadline) {
			return lock, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// isHeld tells whether a live cgfreeze holds the target. It probes with a
// shared lock, which conflicts with the holder's exclusive one, for as
// short a time as it can.
func isHeld(root *mount.Root, cgPath string) bool {
	dir, err := root.Open(cgPath, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return false
	}
	defer dir.Close()
	return errors.Is(unix.Flock(int(dir.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}

// heldError explains a target that a running cgfreeze holds, with the
// holder's identity from its mark.
func heldError(root *mount.Root, cgPath string) error {
	o, _ := owned(root, cgPath, true)
	m := o.mark
	if m == nil {
		m = o.childMark
	}
	if m == nil {
		return fmt.Errorf("%w: %s is held by a running cgfreeze (it is starting or ending); end that one (SIGTERM) instead", ErrAlreadyFrozen, cgPath)
	}
	return fmt.Errorf("%w: %s is held by a running cgfreeze (PID %d in its PID namespace, strategy %s, since %s); end that one (SIGTERM) instead", ErrAlreadyFrozen, cgPath, m.Holder, m.Strategy, m.Since.Format(time.RFC3339))
}
