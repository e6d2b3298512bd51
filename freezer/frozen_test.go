//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStateName(t *testing.T) {
	for _, tt := range []struct {
		requested, frozen bool
		want              string
	}{
		{false, false, "thawed"},
		{true, false, "freezing"},
		{true, true, "frozen"},
		// Frozen by an ancestor: cgroup.events says frozen whatever the
		// cgroup's own cgroup.freeze asks.
		{false, true, "frozen"},
	} {
		if got := stateName(tt.requested, tt.frozen); got != tt.want {
			t.Errorf("stateName(%v, %v) = %q, want %q", tt.requested, tt.frozen, got, tt.want)
		}
	}
}

func TestBtoi(t *testing.T) {
	if btoi(true) != 1 || btoi(false) != 0 {
		t.Errorf("btoi(true), btoi(false) = %d, %d; want 1, 0", btoi(true), btoi(false))
	}
}

// procsWriter stands in for an open cgroup.procs: it returns the errors in
// turn (nil once they run out) and records what was written.
type procsWriter struct {
	errs   []error
	writes []string
}

func (w *procsWriter) Write(b []byte) (int, error) {
	w.writes = append(w.writes, string(b))
	if len(w.errs) == 0 {
		return len(b), nil
	}
	err := w.errs[0]
	w.errs = w.errs[1:]
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

func TestMovePID(t *testing.T) {
	for _, tt := range []struct {
		name       string
		errs       []error
		wantMoved  bool
		wantErr    error // nil for success
		wantWrites int
	}{
		{"moved", nil, true, nil, 1},
		{"gone", []error{&fs.PathError{Op: "write", Path: "cgroup.procs", Err: unix.ESRCH}}, false, nil, 1},
		{"EINVAL for a moment", []error{unix.EINVAL, unix.EINVAL}, true, nil, 3},
		{"EINVAL then gone", []error{unix.EINVAL, unix.ESRCH}, false, nil, 2},
		{"EINVAL for good", []error{unix.EINVAL, unix.EINVAL, unix.EINVAL, unix.EINVAL, unix.EINVAL, unix.EINVAL}, false, unix.EINVAL, einvalRetries},
		{"EPERM", []error{unix.EPERM}, false, ErrNotPrivileged, 1},
		{"EBUSY", []error{unix.EBUSY}, false, unix.EBUSY, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &procsWriter{errs: tt.errs}
			moved, err := movePID(w, 4242)
			if moved != tt.wantMoved {
				t.Errorf("movePID moved = %v, want %v", moved, tt.wantMoved)
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("movePID error %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("movePID error %v, want it to wrap %v", err, tt.wantErr)
			case tt.wantErr != nil && !strings.HasPrefix(err.Error(), "move PID 4242: ") && !errors.Is(err, ErrNotPrivileged):
				t.Errorf("movePID error %q, want it to name the PID", err)
			}
			if len(w.writes) != tt.wantWrites {
				t.Errorf("movePID wrote %d times, want %d", len(w.writes), tt.wantWrites)
			}
			for _, s := range w.writes {
				if s != "4242" {
					t.Errorf("movePID wrote %q, want %q", s, "4242")
				}
			}
		})
	}
}

func TestIgnoreCgroupRemoved(t *testing.T) {
	for _, err := range []error{
		nil,
		&fs.PathError{Op: "open", Path: "/x/cgroup.procs", Err: unix.ENOENT},
		fmt.Errorf("write: %w", unix.ENODEV),
		fs.ErrNotExist,
	} {
		if got := ignoreCgroupRemoved(err); got != nil {
			t.Errorf("ignoreCgroupRemoved(%v) = %v, want nil", err, got)
		}
	}
	for _, err := range []error{unix.EBUSY, unix.EPERM, errors.New("boom")} {
		if got := ignoreCgroupRemoved(err); got != err { //nolint:errorlint // identity is the point
			t.Errorf("ignoreCgroupRemoved(%v) = %v, want it unchanged", err, got)
		}
	}
}

func TestRetryThaw(t *testing.T) {
	t.Run("first try", func(t *testing.T) {
		calls := 0
		err := retryThaw(context.Background(), func() error { calls++; return nil })
		if err != nil || calls != 1 {
			t.Errorf("retryThaw = %v after %d calls, want nil after 1", err, calls)
		}
	})
	t.Run("third try", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		calls := 0
		err := retryThaw(ctx, func() error {
			calls++
			if calls < 3 {
				return unix.EBUSY
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Errorf("retryThaw = %v after %d calls, want nil after 3", err, calls)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		calls := 0
		start := time.Now()
		err := retryThaw(ctx, func() error { calls++; return unix.EBUSY })
		if !errors.Is(err, ErrThawFailed) || !errors.Is(err, unix.EBUSY) {
			t.Errorf("retryThaw error %v, want it to wrap ErrThawFailed and EBUSY", err)
		}
		if want := "thaw did not complete: device or resource busy"; err != nil && err.Error() != want {
			t.Errorf("retryThaw error %q, want %q", err, want)
		}
		if calls < 2 {
			t.Errorf("retryThaw tried %d times before its deadline, want at least 2", calls)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("retryThaw took %v past a 200ms deadline", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		calls := 0
		err := retryThaw(ctx, func() error { calls++; return unix.EBUSY })
		if !errors.Is(err, ErrThawFailed) || calls != 1 {
			t.Errorf("retryThaw(cancelled) = %v after %d calls, want ErrThawFailed after 1", err, calls)
		}
		// A cancelled context does not stop a thaw that succeeds.
		if err := retryThaw(ctx, func() error { return nil }); err != nil {
			t.Errorf("retryThaw(cancelled, success) = %v, want nil", err)
		}
	})
}

func TestRollback(t *testing.T) {
	freezeErr := fmt.Errorf("%w: timed out", ErrFreezeFailed)
	calls := 0
	var sawDeadline bool
	err := rollback(freezeErr, func(ctx context.Context) error {
		calls++
		_, sawDeadline = ctx.Deadline()
		if calls < 2 {
			return unix.EBUSY
		}
		return nil
	})
	if err != freezeErr { //nolint:errorlint // identity is the point
		t.Errorf("rollback = %v, want the freeze's error unchanged", err)
	}
	if calls != 2 || !sawDeadline {
		t.Errorf("rollback called undo %d times (deadline %v), want 2 with a deadline", calls, sawDeadline)
	}
}
