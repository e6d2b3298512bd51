package freezer

import (
	"errors"

	"github.com/cgfreeze/cgfreeze/mount"
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
