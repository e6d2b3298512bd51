package freezer

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// Errors returned by this package wrap one of these.
var (
	// ErrTargetNotFound: the target process does not exist.
	ErrTargetNotFound = errors.New("target process not found")
	// ErrAmbiguousContainer: a container ID prefix matches more than one
	// container.
	ErrAmbiguousContainer = errors.New("ambiguous container ID")
	// ErrUnsafeTarget: freezing the target would freeze the caller, the
	// host, or a cgroup cgfreeze does not support (threaded).
	ErrUnsafeTarget = errors.New("target refused")
	// ErrNotPrivileged: the cgroup filesystem could not be mounted or written.
	ErrNotPrivileged = mount.ErrNotPrivileged
	// ErrNoFreezer: there is no freezer for the target (v1 controller not
	// mounted, or a v2 kernel older than 5.2).
	ErrNoFreezer = errors.New("no cgroup freezer")
	// ErrReadOnly: the cgroup filesystem refuses writes.
	ErrReadOnly = errors.New("read-only cgroup filesystem")
	// ErrAlreadyFrozen: the target is frozen already, by someone else or by
	// a cgfreeze that still holds it or left it behind.
	ErrAlreadyFrozen = errors.New("target already frozen")
	// ErrFreezeFailed: the freeze did not complete in time or failed; it
	// was rolled back.
	ErrFreezeFailed = errors.New("freeze did not complete")
	// ErrThawFailed: a thaw (or a rollback) did not complete; the target may
	// still be frozen.
	ErrThawFailed = errors.New("thaw did not complete")
)

// classify wraps a system error from the cgroup filesystem into the
// package's error for it, keeping the original for the message.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		if errors.Is(err, ErrNotPrivileged) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotPrivileged, err)
	}
	return err
}

// ignoreCgroupRemoved treats a cgroup that vanished (its last process exited
// and someone removed it) as done.
func ignoreCgroupRemoved(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}
