package cgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMountinfo(t *testing.T) {
	in := `35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
36 24 0:31 / /sys/fs/cgroup/freezer rw,nosuid shared:11 - cgroup cgroup rw,freezer
37 24 0:32 /sub /mnt/a\040b rw - tmpfs none rw,size=10k
`
	got, err := ParseMountinfo(strings.NewReader(in), "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d entries, want 3: %+v", len(got), got)
	}
	if e := got[0]; e.FSType != "cgroup2" || e.MountPoint != "/sys/fs/cgroup/unified" || e.Root != "/" || !slices.Equal(e.SuperOptions, []string{"rw", "nsdelegate"}) {
		t.Errorf("entry 0: %+v", e)
	}
	if e := got[1]; e.FSType != "cgroup" || !slices.Contains(e.SuperOptions, "freezer") {
		t.Errorf("entry 1: %+v", e)
	}
	if e := got[2]; e.MountPoint != "/mnt/a b" || e.Root != "/sub" || e.Source != "none" {
		t.Errorf("entry 2: %+v (the escaped space)", e)
	}
	if _, err := ParseMountinfo(strings.NewReader("1 2 3\n"), "bad"); err == nil || !strings.HasPrefix(err.Error(), "bad: ") {
		t.Errorf("a malformed line: error %v", err)
	}
}

func TestSameOptions(t *testing.T) {
	if !SameOptions([]string{"rw", "nsdelegate"}, []string{"nsdelegate", "rw"}) {
		t.Error("the same options in another order differ")
	}
	if SameOptions([]string{"rw"}, []string{"rw", "nsdelegate"}) {
		t.Error("different options are the same")
	}
	a := []string{"b", "a"}
	SameOptions(a, []string{"a", "b"})
	if !slices.Equal(a, []string{"b", "a"}) {
		t.Errorf("SameOptions sorted its argument: %q", a)
	}
}

func TestParseProcCgroup(t *testing.T) {
	in := []byte("12:freezer:/cg-v1\n11:cpu,cpuacct:/other\n0::/cg-v2/sub\n")
	if got, err := ParseProcCgroup(in, 1, "f"); err != nil || got != "/cg-v1" {
		t.Errorf("version 1: %q, %v", got, err)
	}
	if got, err := ParseProcCgroup(in, 2, "f"); err != nil || got != "/cg-v2/sub" {
		t.Errorf("version 2: %q, %v", got, err)
	}
	if _, err := ParseProcCgroup([]byte("0::/only-v2\n"), 1, "/proc/7/cgroup"); err == nil || !strings.Contains(err.Error(), "/proc/7/cgroup has no v1 freezer line") {
		t.Errorf("no freezer line: error %v", err)
	}
	// A freezer co-mounted with other controllers.
	if got, err := ParseProcCgroup([]byte("3:freezer,devices:/x\n"), 1, "f"); err != nil || got != "/x" {
		t.Errorf("co-mounted freezer: %q, %v", got, err)
	}
}

// TestRestoreSubtreeControl on a regular file: it reports what was added
// and writes the "-controller" that disables it (a regular file keeps the
// last write, where the kernel's file would drop the controller).
func TestRestoreSubtreeControl(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cgroup.subtree_control")
	if err := os.WriteFile(file, []byte("cpu memory hugetlb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := SubtreeControl(dir)
	if err != nil || !slices.Equal(before, []string{"cpu", "memory", "hugetlb"}) {
		t.Fatalf("SubtreeControl: %q, %v", before, err)
	}
	added, err := RestoreSubtreeControl(dir, []string{"cpu", "memory"})
	if err != nil || !slices.Equal(added, []string{"hugetlb"}) {
		t.Fatalf("RestoreSubtreeControl: added %q, %v; want hugetlb", added, err)
	}
	if b, _ := os.ReadFile(file); string(b) != "-hugetlb" {
		t.Errorf("the file got %q, want the write -hugetlb", b)
	}
	if _, err := RestoreSubtreeControl(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("a missing cgroup gives no error")
	}
}

// TestLockAt: a process started while the lock is held does not inherit
// it, so the release frees it at once; a held lock makes the next taker
// wait (it is told once) and give up at its limit, and the waiter it
// leaves behind frees the lock as soon as it gets it.
func TestLockAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	release, err := LockAt(path, time.Second, func() { t.Error("the first taker waited") })
	if err != nil {
		t.Fatal(err)
	}
	// A child that outlives the release: with the descriptor inherited,
	// it would hold the lock on.
	child := exec.Command("sleep", "5")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	release()
	release, err = LockAt(path, time.Second, func() { t.Error("the lock is still held after its release: the child inherited it") })
	if err != nil {
		t.Fatal(err)
	}

	waited := 0
	start := time.Now()
	if _, err := LockAt(path, 200*time.Millisecond, func() { waited++ }); err == nil || !strings.Contains(err.Error(), "not free within 200ms") {
		t.Errorf("a second taker while the lock is held: %v, want an error that it is not free", err)
	}
	if waited != 1 {
		t.Errorf("the second taker was told %d times that it waits, want once", waited)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("the second taker gave up after %v, before its limit", d)
	}
	release()
	again, err := LockAt(path, 2*time.Second, nil)
	if err != nil {
		t.Fatalf("after the release, with the abandoned waiter: %v", err)
	}
	again()
}
