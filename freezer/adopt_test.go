//go:build linux

package freezer

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dupFile stands in for the descriptor that a hand-over passes to another
// process: a new descriptor of the same open file (and of its flock).
func dupFile(t *testing.T, f *os.File) *os.File {
	t.Helper()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "passed lock")
}

// TestFakeHandOverAdopt: a freeze handed over keeps the target held all
// along (a second freeze is refused before, between and after), the mark
// names the process it was handed to, and the Frozen that Adopt rebuilds
// from the mark and the cgroups thaws everything back.
func TestFakeHandOverAdopt(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101, 102)
			ft.k.MustMkdir(ft.sub("worker"))
			ft.k.Start(ft.sub("worker"), 201)
			where := map[int]string{101: fakeTargetPath, 102: fakeTargetPath, 201: ft.sub("worker")}
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			// The hold is handed to this same process: the mark names it.
			var passed *os.File
			if err := f.HandOver(os.Getpid(), func(lock *os.File) error {
				passed = dupFile(t, lock)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := f.HandOver(os.Getpid(), func(*os.File) error { return nil }); err == nil {
				t.Error("a second HandOver of the same Frozen succeeded")
			}
			if _, err := Freeze(testCtx(t, time.Second), ft.Target); !errors.Is(err, ErrAlreadyFrozen) {
				t.Errorf("Freeze while the lock is in flight = %v, want ErrAlreadyFrozen", err)
			}
			a, err := Adopt(ft.Target, passed, 3)
			if err != nil {
				t.Fatalf("Adopt: %v", err)
			}
			ft.requireHeld(t, "after Adopt")
			if a.Processes != 3 || (s == StrategySubtree && (a.child != f.child || len(a.children) != 1)) {
				t.Errorf("Adopt rebuilt %d processes, child %q, children %v; want 3, %q, %v", a.Processes, a.child, a.children, f.child, f.children)
			}
			st, err := Inspect(ft.Target)
			if err != nil || !st.Held || st.Holder != os.Getpid() {
				t.Errorf("Inspect after Adopt = %+v, %v; want held by %d", st, err, os.Getpid())
			}
			if err := a.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after the adopted freeze's Thaw", where)
		})
	}
}

// TestFakeAdoptRefused: Adopt takes over only a freeze handed to this
// process, with the target's own lock, in the strategy's frozen state;
// otherwise ErrNotAdoptable, and the lock passed is closed.
func TestFakeAdoptRefused(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			var lock *os.File
			if err := f.HandOver(os.Getpid()+1, func(l *os.File) error {
				lock = dupFile(t, l)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			raw, _ := ft.k.Fake.Xattr(ft.Path, markXattr)
			var m mark
			if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Holder != os.Getpid()+1 {
				t.Fatalf("the mark after HandOver = %s (%v), want holder %d", raw, err, os.Getpid()+1)
			}
			other, err := os.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Adopt(ft.Target, other, 1); !errors.Is(err, ErrNotAdoptable) {
				t.Errorf("Adopt with a lock of another directory = %v, want ErrNotAdoptable", err)
			}
			if _, err := unix.FcntlInt(other.Fd(), unix.F_GETFD, 0); err == nil {
				t.Error("Adopt left the refused lock open")
			}
			if _, err := Adopt(ft.Target, dupFile(t, lock), 1); !errors.Is(err, ErrNotAdoptable) {
				t.Errorf("Adopt of a freeze handed to another process = %v, want ErrNotAdoptable", err)
			}
			// Handed to another: undone by a recovery once its lock is
			// gone, as after that holder's death.
			_ = lock.Close()
			if _, err := Recover(testCtx(t, 5*time.Second), ft.Target); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after the recovery", map[int]string{101: fakeTargetPath})
		})
	}
}
