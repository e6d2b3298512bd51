//go:build linux

package mount

import (
	"errors"
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

// With CloneOnly, Open copies a mount of the hierarchy's root from Clones
// or fails with ErrNoClone: it never makes a new mount (which, from the
// initial cgroup namespace, would apply options it was not told).
func TestOpenCloneOnly(t *testing.T) {
	notRoot := []string{t.TempDir(), "/proc"}
	if _, err := Open(Spec{Version: 2}, Options{Clones: notRoot, CloneOnly: true}); !errors.Is(err, ErrNoClone) {
		t.Errorf("Open(CloneOnly, %q) = %v, want ErrNoClone", notRoot, err)
	}
	if _, err := Open(Spec{Version: 2}, Options{CloneOnly: true}); !errors.Is(err, ErrNoClone) {
		t.Errorf("Open(CloneOnly, no clones) = %v, want ErrNoClone", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("the copy needs root (open_tree)")
	}
	mounts := RootMountsFromFile("cgroup2", "/proc/self/mountinfo")
	if len(mounts) == 0 {
		t.Skip("no cgroup2 mount is visible")
	}
	fs, err := Open(Spec{Version: 2}, Options{Clones: append(notRoot, mounts[0]), CloneOnly: true})
	if err != nil {
		t.Fatalf("Open(CloneOnly, ... %s) = %v", mounts[0], err)
	}
	defer func() { _ = fs.Close() }()
	if err := fs.Do(func(r *Root) error {
		if ok, err := r.Exists("cgroup.procs"); err != nil || !ok {
			t.Errorf("the copy of %s has no cgroup.procs: %v, %v", mounts[0], ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
