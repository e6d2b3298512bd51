//go:build linux

package mount

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeNotifier makes a fake hierarchy in a temporary directory with the
// files given (path below it: content), opens it (closed when the test
// ends) and returns the fake and a Notifier to which add, if set, added
// its watches. The caller closes the Notifier.
func fakeNotifier(t *testing.T, files map[string]string, add func(r *Root, n *Notifier) error) (*Fake, *Notifier) {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fake := NewFake(dir)
	fs, err := Open(Spec{Version: 2}, Options{Fake: fake})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fs.Close() })
	var n *Notifier
	if err := fs.Do(func(r *Root) error {
		n = r.NewNotifier()
		if add == nil {
			return nil
		}
		return add(r, n)
	}); err != nil {
		t.Fatal(err)
	}
	return fake, n
}

// The Notifier on a fake hierarchy (no root needed): a file's notification,
// a directory's child created and removed, Wake, and nothing after Remove.
func TestNotifierFake(t *testing.T) {
	fake, n := fakeNotifier(t, map[string]string{"a/cgroup.events": "frozen 0\n"}, func(r *Root, n *Notifier) error {
		if err := n.AddFile(r, "/a/cgroup.events"); err != nil {
			return err
		}
		return n.AddDir(r, "/a")
	})
	defer n.Close()
	dir := fake.Dir
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

// A Wait with no limit ends at the tick (Ticked then says so, once) or at a
// Wake, and at nothing else; a zero d only looks.
func TestNotifierNoLimit(t *testing.T) {
	_, n := fakeNotifier(t, nil, nil)
	defer n.Close()
	if got, err := n.Wait(0); err != nil || len(got) != 0 || n.Ticked() {
		t.Fatalf("Wait(0) with nothing set = %v, %v", got, err)
	}
	const period = 30 * time.Millisecond
	if err := n.SetTick(period); err != nil {
		t.Fatal(err)
	}
	if err := n.SetTick(period); err == nil {
		t.Error("a second SetTick was accepted")
	}
	for i := range 3 {
		start := time.Now()
		if got, err := n.Wait(NoLimit); err != nil || len(got) != 0 {
			t.Fatalf("Wait(NoLimit) = %v, %v", got, err)
		}
		if !n.Ticked() {
			t.Fatalf("tick %d: Wait(NoLimit) returned %v after its start without the tick", i, time.Since(start))
		}
		if n.Ticked() {
			t.Fatal("Ticked said so twice for one tick")
		}
	}
	// A Wake ends the wait long before the next tick of a slow one.
	_, slow := fakeNotifier(t, nil, nil)
	defer slow.Close()
	if err := slow.SetTick(time.Hour); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(10 * time.Millisecond); slow.Wake() }()
	start := time.Now()
	if _, err := slow.Wait(NoLimit); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second || slow.Ticked() {
		t.Errorf("Wake ended Wait(NoLimit) after %v (ticked %v)", d, slow.Ticked())
	}
}

// The hold's steady state, a Wait(NoLimit) that a tick ends, allocates
// nothing (it runs 20 times a second for as long as a subtree hold lasts),
// and a Wait with a limit between two without one leaves no deadline
// behind: the wait after it still waits for its event.
func TestNotifierWaitSteady(t *testing.T) {
	_, n := fakeNotifier(t, nil, nil)
	defer n.Close()
	if err := n.SetTick(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(50, func() {
		if _, err := n.Wait(NoLimit); err != nil {
			t.Fatal(err)
		}
		n.Ticked()
	}); allocs != 0 {
		t.Errorf("a tick's Wait(NoLimit) allocates %v times", allocs)
	}

	_, slow := fakeNotifier(t, nil, nil)
	defer slow.Close()
	start := time.Now()
	if got, err := slow.Wait(20 * time.Millisecond); err != nil || len(got) != 0 {
		t.Fatalf("Wait(20ms) with nothing set = %v, %v", got, err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("Wait(20ms) returned after %v", d)
	}
	woke := make(chan time.Time, 1)
	go func() {
		time.Sleep(60 * time.Millisecond)
		woke <- time.Now()
		slow.Wake()
	}()
	if _, err := slow.Wait(NoLimit); err != nil {
		t.Fatal(err)
	}
	if ended := time.Now(); ended.Before(<-woke) {
		t.Error("Wait(NoLimit) after a Wait(20ms) returned before its Wake: the old deadline stayed")
	}
}

// A file probe re-reads its file at every Read, and the probe of a
// process's /proc/<PID>/cgroup fails once that process is gone (it stays
// bound to the process, not to the number).
func TestFileProbe(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte(" one \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, err := OpenFileProbe(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pr.Close() }()
	var buf [8]byte
	if b, err := pr.Read(buf[:]); err != nil || string(b) != "one" {
		t.Fatalf("Read = %q, %v", b, err)
	}
	if err := os.WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := pr.Read(buf[:]); err != nil || string(b) != "two" {
		t.Fatalf("Read after a rewrite = %q, %v", b, err)
	}
	if _, err := OpenFileProbe(filepath.Join(dir, "none")); err == nil {
		t.Error("OpenFileProbe of a missing file succeeded")
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cg, err := OpenFileProbe(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cg.Close() }()
	var big [4096]byte
	if b, err := cg.Read(big[:]); err != nil || len(b) == 0 {
		t.Fatalf("Read of a live process's cgroup file = %q, %v", b, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if b, err := cg.Read(big[:]); err == nil {
		t.Errorf("Read of a reaped process's cgroup file = %q, want an error", b)
	}
}

// Close removes the inotify watches before it closes the instance: a close
// that finds marks left waits for an SRCU grace period itself (and a
// process's exit waits for that close).
func TestNotifierCloseRemovesWatches(t *testing.T) {
	_, n := fakeNotifier(t, map[string]string{"a/cgroup.procs": ""}, func(r *Root, n *Notifier) error {
		if err := n.AddDir(r, "/a"); err != nil {
			return err
		}
		return n.AddWrites(r, "/a/cgroup.procs")
	})
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
