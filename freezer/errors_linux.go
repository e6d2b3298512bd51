//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
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
