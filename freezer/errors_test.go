//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

func TestClassify(t *testing.T) {
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
	for _, tt := range []struct {
		name string
		in   error
		want error
		msg  string
	}{
		{"EROFS", &fs.PathError{Op: "open", Path: "/x/cgroup.freeze", Err: unix.EROFS}, ErrReadOnly,
			"read-only cgroup filesystem: open /x/cgroup.freeze: read-only file system"},
		{"EPERM", &fs.PathError{Op: "open", Path: "/x/cgroup.procs", Err: unix.EPERM}, ErrNotPrivileged,
			"not privileged: open /x/cgroup.procs: operation not permitted"},
		{"EACCES", fmt.Errorf("write %q: %w", "1", unix.EACCES), ErrNotPrivileged,
			`not privileged: write "1": permission denied`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.in)
			if !errors.Is(got, tt.want) {
				t.Errorf("classify(%v) = %v, want it to wrap %v", tt.in, got, tt.want)
			}
			if !errors.Is(got, tt.in) {
				t.Errorf("classify(%v) = %v, want it to keep the original", tt.in, got)
			}
			if got.Error() != tt.msg {
				t.Errorf("classify(%v) = %q, want %q", tt.in, got, tt.msg)
			}
		})
	}

	// An error that says "not privileged" already is not wrapped twice.
	already := fmt.Errorf("mount cgroup2 (): %w (%w)", mount.ErrNotPrivileged, unix.EPERM)
	if got := classify(already); got != already { //nolint:errorlint // identity is the point
		t.Errorf("classify(%v) = %v, want it unchanged", already, got)
	}
	// Anything else passes through unchanged.
	for _, in := range []error{unix.ENOENT, unix.EBUSY, errors.New("boom"), fmt.Errorf("x: %w", ErrNoFreezer)} {
		if got := classify(in); got != in { //nolint:errorlint // identity is the point
			t.Errorf("classify(%v) = %v, want it unchanged", in, got)
		}
	}
	if ErrNotPrivileged != mount.ErrNotPrivileged { //nolint:errorlint // the same sentinel
		t.Error("freezer.ErrNotPrivileged is not mount.ErrNotPrivileged")
	}
}
