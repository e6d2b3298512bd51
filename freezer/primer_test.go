//go:build linux

package freezer

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The unit tests write to no real cgroup: PrepareThaw takes the child's
// way unless a test gives it a primer of its own.
func TestMain(m *testing.M) {
	openOwnPrimer = func() (*Primer, error) { return nil, errors.New("unit tests: no real cgroup") }
	os.Exit(m.Run())
}

// With a primer of its own, PrepareThaw writes the caller's PID to the
// caller's own cgroup.procs (here a plain file) and nothing to the target's
// mount: the thaw's calls do not wait for it.
func TestFakePrepareThawOwnCgroup(t *testing.T) {
	ft := newFakeTarget(t, StrategySubtree, 101, 102)
	where := map[int]string{101: fakeTargetPath, 102: fakeTargetPath}
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "cgroup.procs")
	if err := os.WriteFile(own, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{}, 1)
	defer func(orig func() (*Primer, error)) { openOwnPrimer = orig }(openOwnPrimer)
	openOwnPrimer = func() (*Primer, error) {
		w, err := os.OpenFile(own, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		opened <- struct{}{}
		return &Primer{procs: w, pid: []byte(strconv.Itoa(os.Getpid()))}, nil
	}
	kernel := ft.k.Fake.OnWrite
	ft.k.Fake.OnWrite = func(p, v string) error {
		t.Errorf("PrepareThaw wrote %q to the target's %s", v, p)
		return kernel(p, v)
	}
	f.PrepareThaw()
	select {
	case <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("PrepareThaw opened no primer")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(own)
		if string(b) == strconv.Itoa(os.Getpid()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the own cgroup.procs holds %q, want this process's PID %d", b, os.Getpid())
		}
		time.Sleep(time.Millisecond)
	}
	ft.k.Fake.OnWrite = kernel
	if got := ft.k.Procs(ft.sub(f.child)); !slices.Equal(got, []int{101, 102}) {
		t.Errorf("after PrepareThaw the cgfreeze child holds %v, want [101 102]", got)
	}
	if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after Thaw", where)
}

// openPrimer trusts a path only where it is a cgroup2 mount whose
// cgroup.procs lists the caller: a plain directory with the same files is
// refused, and the own process is found in a list.
func TestOpenPrimerRefuses(t *testing.T) {
	dir := t.TempDir()
	self := os.Getpid()
	cg := filepath.Join(dir, "cgroup")
	if err := os.WriteFile(cg, []byte("0::/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x", "cgroup.procs"), []byte(strconv.Itoa(self)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := openPrimer([]string{dir}, cg, self); err == nil {
		_ = p.Close()
		t.Fatalf("openPrimer took %s, which is no cgroup2 mount", dir)
	}
	if err := os.WriteFile(cg, []byte("1:name=systemd:/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openPrimer([]string{dir}, cg, self); err == nil {
		t.Fatal("openPrimer took a process without a cgroup2 path")
	}
	if _, err := openPrimer([]string{dir}, path.Join(dir, "missing"), self); err == nil {
		t.Fatal("openPrimer took a missing cgroup file")
	}
	for _, tt := range []struct {
		content, pid string
		want         bool
	}{
		{"1\n22\n333\n", "22", true},
		{"1\n222\n", "22", false},
		{"", "22", false},
		{"22", "22", true},
	} {
		if got := listsPID(tt.content, tt.pid); got != tt.want {
			t.Errorf("listsPID(%q, %q) = %v, want %v", tt.content, tt.pid, got, tt.want)
		}
	}
	var nilPrimer *Primer
	nilPrimer.Prime()
	if err := nilPrimer.Close(); err != nil {
		t.Errorf("a nil Primer's Close: %v", err)
	}
	if OpenPrimer(nil) != nil {
		t.Error("OpenPrimer(nil) is not nil")
	}
}
