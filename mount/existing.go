//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrNotHierarchyRoot reports a mount given as Options.Existing that does
// not show the root of its hierarchy as the caller's cgroup namespace sees
// it: a bind of a subdirectory (what some runtimes give a container), a
// directory below a mount, or a mount made in another cgroup namespace.
// Paths read from /proc/<pid>/cgroup would name other cgroups in it.
var ErrNotHierarchyRoot = errors.New("not the root of the cgroup hierarchy")

// selfMountinfo is the mountinfo that checkExistingRoot reads: the calling
// thread's, whose root fields the kernel prints relative to that thread's
// cgroup namespace.
const selfMountinfo = "/proc/thread-self/mountinfo"

// checkExistingRoot checks that fd, opened at dir, is the root of a mount
// whose root field in mountinfo is "/": the root of the hierarchy as the
// calling thread's cgroup namespace sees it, the same test RootMounts
// applies to the mounts it offers for cloning. The kernel prints a
// cgroup mount's root relative to the reader's cgroup namespace: "/sub"
// for a bind of a subdirectory, "/.." for a mount of an ancestor
// namespace's root.
func checkExistingRoot(fd int, dir string) error {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID|unix.STATX_INO, &st); err != nil {
		return fmt.Errorf("statx %s: %w", dir, err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return fmt.Errorf("%s: the kernel does not tell the mount of a file (statx STATX_MNT_ID, Linux 5.8), so cgfreeze cannot check that it is the root of the hierarchy", dir)
	}
	f, err := os.Open(selfMountinfo)
	if err != nil {
		return fmt.Errorf("check that %s is the root of the hierarchy: %w", dir, err)
	}
	defer f.Close()
	root, mountPoint, found, err := MountByID(f, st.Mnt_id)
	if err != nil {
		return fmt.Errorf("%s: %w", selfMountinfo, err)
	}
	if !found {
		return fmt.Errorf("%s: mount %d of %s is not listed", selfMountinfo, st.Mnt_id, dir)
	}
	if root != "/" {
		return fmt.Errorf("%w: %s is a mount of %s of the hierarchy (mountinfo root %q), not of its root as cgfreeze's cgroup namespace sees it", ErrNotHierarchyRoot, dir, root, root)
	}
	// dir must be the mount's root directory, not a directory below it.
	var top unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, mountPoint, 0, unix.STATX_MNT_ID|unix.STATX_INO, &top); err != nil {
		return fmt.Errorf("statx %s (the mount point of %s): %w", mountPoint, dir, err)
	}
	if top.Mnt_id != st.Mnt_id || top.Ino != st.Ino {
		return fmt.Errorf("%w: %s is a directory below the mount at %s, or that mount is covered by another", ErrNotHierarchyRoot, dir, mountPoint)
	}
	return nil
}
