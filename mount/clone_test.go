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

// TestOpenReader mounts this machine's cgroup2 (as root) without a thread
// of its own, and refuses to enter a namespace.
func TestOpenReader(t *testing.T) {
	if _, _, err := OpenReader(Spec{Version: 2}, Options{CgroupNamespace: "/proc/self/ns/cgroup"}); err == nil {
		t.Error("OpenReader entered a namespace")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mounts := RootMountsFromFile("cgroup2", "/proc/self/mountinfo")
	if len(mounts) == 0 {
		t.Skip("no cgroup2 mount is visible")
	}
	root, closeRoot, err := OpenReader(Spec{Version: 2}, Options{Clones: mounts})
	if err != nil {
		t.Fatal(err)
	}
	defer closeRoot()
	if ok, err := root.Exists("cgroup.procs"); err != nil || !ok {
		t.Errorf("OpenReader's root has no cgroup.procs: %v, %v", ok, err)
	}
}
