//go:build linux

package mount

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloneHierarchy copies this machine's cgroup2 mount (as root, where
// one is visible) and refuses what is not the root of a writable cgroup2
// mount.
func TestCloneHierarchy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (open_tree)")
	}
	mounts := RootMountsFromFile("cgroup2", "/proc/self/mountinfo")
	if len(mounts) == 0 {
		t.Skip("no cgroup2 mount is visible")
	}
	fd, err := cloneHierarchy(Spec{Version: 2}, mounts[0])
	if err != nil {
		t.Fatalf("cloneHierarchy(%s): %v", mounts[0], err)
	}
	defer unix.Close(fd)
	r := &Root{fd: fd}
	if ok, err := r.Exists("cgroup.procs"); err != nil || !ok {
		t.Errorf("the copy of %s has no cgroup.procs: %v, %v", mounts[0], ok, err)
	}
	for _, dir := range []string{"/proc", filepath.Join(mounts[0], "..")} {
		if fd, err := cloneHierarchy(Spec{Version: 2}, dir); err == nil {
			unix.Close(fd)
			t.Errorf("cloneHierarchy(%s) copied it", dir)
		}
	}
	// A sub-cgroup is not the root of the hierarchy.
	entries, _ := os.ReadDir(mounts[0])
	for _, e := range entries {
		if e.IsDir() {
			if fd, err := cloneHierarchy(Spec{Version: 2}, filepath.Join(mounts[0], e.Name())); err == nil {
				unix.Close(fd)
				t.Errorf("cloneHierarchy(%s) copied a sub-cgroup", e.Name())
			}
			break
		}
	}
}
