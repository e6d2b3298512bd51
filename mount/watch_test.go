//go:build linux

package mount

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The Notifier on a fake hierarchy (no root needed): a file's notification,
// a directory's child created and removed, Wake, and nothing after Remove.
func TestNotifierFake(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "cgroup.events"), []byte("frozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := NewFake(dir)
	fs, err := Open(Spec{Version: 2}, Options{Fake: fake})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fs.Close() }()
	var n *Notifier
	if err := fs.Do(func(r *Root) error {
		n = r.NewNotifier()
		if err := n.AddFile(r, "/a/cgroup.events"); err != nil {
			return err
		}
		return n.AddDir(r, "/a")
	}); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	wait := func(want ...string) {
		t.Helper()
		got, err := n.Wait(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Wait = %v, want %v", got, want)
		}
	}
	if got, _ := n.Wait(20 * time.Millisecond); len(got) != 0 {
		t.Errorf("Wait with nothing changed = %v", got)
	}
	fake.Notify("a/cgroup.events")
	wait("/a/cgroup.events")
	if err := os.Mkdir(filepath.Join(dir, "a", "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	wait("/a")
	if err := os.Remove(filepath.Join(dir, "a", "child")); err != nil {
		t.Fatal(err)
	}
	wait("/a")
	go func() { time.Sleep(10 * time.Millisecond); n.Wake() }()
	start := time.Now()
	wait()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Wake took %v to end the Wait", d)
	}
	n.Remove("/a/cgroup.events")
	if fake.Watching("a/cgroup.events") != 0 {
		t.Error("Remove left the fake's watch")
	}
	fake.Notify("a/cgroup.events")
	if got, _ := n.Wait(20 * time.Millisecond); len(got) != 0 {
		t.Errorf("Wait after Remove = %v", got)
	}
}

// The fake's stand-ins: xattrs in memory, writes through OnWrite, rmdir
// refused while a child exists.
func TestFakeRoot(t *testing.T) {
	dir := t.TempDir()
	fake := NewFake(dir)
	var writes []string
	fake.OnWrite = func(p, v string) error { writes = append(writes, p+"="+v); return nil }
	fs, err := Open(Spec{Version: 2}, Options{Fake: fake})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fs.Close() }()
	if err := fs.Do(func(r *Root) error {
		if err := r.Mkdir("/x"); err != nil {
			return err
		}
		if err := r.Mkdir("/x/y"); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "x", "cgroup.procs"), nil, 0o644); err != nil {
			return err
		}
		w, err := r.OpenWrite("/x/cgroup.procs")
		if err != nil {
			return err
		}
		_, _ = w.Write([]byte("1"))
		_, _ = w.Write([]byte("2"))
		if err := r.SetXattr("/x", "trusted.t", "v"); err != nil {
			return err
		}
		if v, err := r.GetXattr("/x", "trusted.t"); err != nil || v != "v" {
			t.Errorf("GetXattr = %q, %v", v, err)
		}
		if err := r.Rmdir("/x"); err == nil {
			t.Error("Rmdir of a cgroup with a child succeeded")
		}
		if err := r.Rmdir("/x/y"); err != nil {
			return err
		}
		if err := r.Rmdir("/x"); err != nil {
			return err
		}
		if _, ok := fake.Xattr("/x", "trusted.t"); ok {
			t.Error("the xattr of a removed cgroup is left")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(writes, []string{"x/cgroup.procs=1", "x/cgroup.procs=2"}) {
		t.Errorf("writes = %v", writes)
	}
}

// Close removes the inotify watches before it closes the instance: a close
// that finds marks left waits for an SRCU grace period itself (and a
// process's exit waits for that close).
func TestNotifierCloseRemovesWatches(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := Open(Spec{Version: 2}, Options{Fake: NewFake(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fs.Close() }()
	var n *Notifier
	if err := fs.Do(func(r *Root) error {
		n = r.NewNotifier()
		if err := n.AddDir(r, "/a"); err != nil {
			return err
		}
		return n.AddWrites(r, "/a/cgroup.procs")
	}); err != nil {
		t.Fatal(err)
	}
	watches := func(fd int) int {
		info, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(info), "inotify wd:")
	}
	if got := watches(n.ino); got != 2 {
		t.Fatalf("the inotify instance has %d watches before Close, want 2", got)
	}
	left := -1
	defer func(orig func(int)) { closeInotify = orig }(closeInotify)
	closeInotify = func(fd int) {
		left = watches(fd)
		_ = unix.Close(fd)
	}
	n.Close()
	if left != 0 {
		t.Errorf("Close closed the inotify instance with %d watches left in it, want 0", left)
	}
}
