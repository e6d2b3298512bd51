//go:build linux

package mount

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMountByID(t *testing.T) {
	const info = `588 493 0:162 / / rw,relatime master:230 - overlay overlay rw
595 594 0:33 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup ro,nsdelegate
600 594 0:33 /kubepods/pod1 /host\040cgroup rw - cgroup2 cgroup rw
601 594 0:33 /.. /outer rw - cgroup2 cgroup rw
short line
`
	for _, tt := range []struct {
		id         uint64
		root, mp   string
		wantExists bool
	}{
		{595, "/", "/sys/fs/cgroup", true},
		{600, "/kubepods/pod1", "/host cgroup", true},
		{601, "/..", "/outer", true},
		{59, "", "", false},
	} {
		root, mp, found, err := MountByID(strings.NewReader(info), tt.id)
		if err != nil || found != tt.wantExists || root != tt.root || mp != tt.mp {
			t.Errorf("MountByID(%d) = %q, %q, %v, %v; want %q, %q, %v", tt.id, root, mp, found, err, tt.root, tt.mp, tt.wantExists)
		}
	}
}

// TestOpenExistingRoot: the root of this machine's cgroup2 mount is
// accepted as --cgroup-mount; a cgroup below it is not the root of the
// hierarchy and is refused with ErrNotHierarchyRoot; what is no cgroup2
// mount is refused too. Reading needs no privilege.
func TestOpenExistingRoot(t *testing.T) {
	mounts := RootMountsFromFile("cgroup2", "/proc/self/mountinfo")
	if len(mounts) == 0 {
		t.Skip("no cgroup2 mount is visible")
	}
	fd, err := openExisting(Spec{Version: 2}, mounts[0])
	if err != nil {
		t.Fatalf("openExisting(%s): %v", mounts[0], err)
	}
	_ = os.NewFile(uintptr(fd), mounts[0]).Close()
	entries, _ := os.ReadDir(mounts[0])
	for _, e := range entries {
		if e.IsDir() {
			sub := filepath.Join(mounts[0], e.Name())
			if fd, err := openExisting(Spec{Version: 2}, sub); !errors.Is(err, ErrNotHierarchyRoot) {
				if err == nil {
					_ = os.NewFile(uintptr(fd), sub).Close()
				}
				t.Errorf("openExisting(%s, a cgroup below the mount) = %v, want ErrNotHierarchyRoot", sub, err)
			}
			break
		}
	}
	if _, err := openExisting(Spec{Version: 2}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not the root of a cgroup2 mount") {
		t.Errorf("openExisting(a temporary directory) = %v", err)
	}
}
