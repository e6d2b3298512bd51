// Package cgtest is test support shared by the integration suite
// (integration/) and the benchmark (bench/): what both read from, and
// restore on, this machine's cgroup hierarchies. It is not part of
// cgfreeze: the freezer package has its own, hardened readers.
//
// Both programs change machine-wide cgroup2 settings (the superblock
// options, nsdelegate; runc enables controllers in the root's
// cgroup.subtree_control) and must put them back; these are the helpers
// they do it with.
package cgtest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// MountEntry is one line of /proc/PID/mountinfo.
type MountEntry struct {
	Root, MountPoint, FSType, Source string
	SuperOptions                     []string
}

// ReadMountinfo reads a mountinfo file (/proc/self/mountinfo).
func ReadMountinfo(file string) ([]MountEntry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountinfo(f, file)
}

// ParseMountinfo parses mountinfo lines from r with
// github.com/moby/sys/mountinfo (as package mount does); name is for errors.
func ParseMountinfo(r io.Reader, name string) ([]MountEntry, error) {
	ms, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out := make([]MountEntry, 0, len(ms))
	for _, m := range ms {
		out = append(out, MountEntry{Root: m.Root, MountPoint: m.Mountpoint, FSType: m.FSType, Source: m.Source,
			SuperOptions: strings.Split(m.VFSOptions, ",")})
	}
	return out, nil
}

// Cg2Options returns the superblock options of the cgroup2 hierarchy as
// the cgroup2 mount at mountPoint shows them in /proc/self/mountinfo.
func Cg2Options(mountPoint string) ([]string, error) {
	mounts, err := ReadMountinfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, me := range mounts {
		if me.FSType == "cgroup2" && me.MountPoint == mountPoint {
			return me.SuperOptions, nil
		}
	}
	return nil, fmt.Errorf("no cgroup2 mount at %s in /proc/self/mountinfo", mountPoint)
}

// SameOptions tells whether a and b hold the same options, in any order.
func SameOptions(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// SetCg2Options applies superblock options to the whole cgroup2 hierarchy,
// for the whole machine, and checks them on the mount at mountPoint. A
// cgroup2 mount made from the initial cgroup namespace applies its options
// to the hierarchy (it clears nsdelegate when it lacks it, and the other
// way around). The mount made here is a detached one (fsopen): it is
// attached nowhere and goes away with its descriptor.
func SetCg2Options(mountPoint string, opts []string) error {
	fd, err := unix.Fsopen("cgroup2", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen cgroup2: %w", err)
	}
	defer unix.Close(fd)
	for _, o := range opts {
		switch o {
		case "rw", "ro", "seclabel", "":
			continue
		}
		if k, v, ok := strings.Cut(o, "="); ok {
			err = unix.FsconfigSetString(fd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fd, o)
		}
		if err != nil {
			return fmt.Errorf("fsconfig cgroup2 %q: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create cgroup2 (options %q): %w", opts, err)
	}
	now, err := Cg2Options(mountPoint)
	if err != nil {
		return err
	}
	if !SameOptions(now, opts) {
		return fmt.Errorf("the cgroup2 options read %q after setting %q", strings.Join(now, ","), strings.Join(opts, ","))
	}
	return nil
}

// ProcCgroup returns pid's cgroup in the v1 freezer hierarchy (version 1)
// or in cgroup2 (version 2), as this process's cgroup namespace sees it.
func ProcCgroup(pid, version int) (string, error) {
	file := fmt.Sprintf("/proc/%d/cgroup", pid)
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	return ParseProcCgroup(b, version, file)
}

// ParseProcCgroup returns the cgroup of the v1 freezer hierarchy (version
// 1) or of cgroup2 (version 2) from the content of a /proc/PID/cgroup
// file; name is for errors.
func ParseProcCgroup(b []byte, version int, name string) (string, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if version == 2 && parts[0] == "0" && parts[1] == "" {
			return parts[2], nil
		}
		if version == 1 && slices.Contains(strings.Split(parts[1], ","), "freezer") {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("%s has no v%d freezer line: %q", name, version, b)
}

// SubtreeControl returns the controllers enabled in the cgroup.subtree_control
// of the cgroup2 cgroup dir (the root: the hierarchy's mount point).
func SubtreeControl(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// RestoreSubtreeControl disables the controllers of dir's
// cgroup.subtree_control that were not in before, and returns them. runc
// enables every available controller on its way down to a container's
// cgroup, the root's included, and its cleanup does not disable them: a
// controller left on in the root (hugetlb, misc...) stays on for the whole
// machine. A controller that cannot be disabled (a cgroup below still
// uses it) is an error; the others are disabled all the same.
func RestoreSubtreeControl(dir string, before []string) ([]string, error) {
	now, err := SubtreeControl(dir)
	if err != nil {
		return nil, err
	}
	var added []string
	for _, ctrl := range now {
		if !slices.Contains(before, ctrl) {
			added = append(added, ctrl)
		}
	}
	file := filepath.Join(dir, "cgroup.subtree_control")
	var errs []error
	for _, ctrl := range added {
		if err := os.WriteFile(file, []byte("-"+ctrl), 0); err != nil {
			errs = append(errs, fmt.Errorf("disable %s in %s: %w", ctrl, file, err))
		}
	}
	return added, errors.Join(errs...)
}

// LockPath is the lock that whatever changes this machine's cgroups or
// their machine-wide settings holds while it does: the integration suite,
// the Kubernetes suite (and its cluster.sh), the bench and the demo. Each
// would disturb the others (nsdelegate switched on or off, a leftover check
// that finds the other's cgroups).
const LockPath = "/tmp/cgfreeze-itest.lock"

// Lock takes LockPath: an exclusive flock(2) on a close-on-exec descriptor,
// so that no process the caller starts inherits it (what flock -o does for
// a shell). When another holds it, Lock calls waiting (if not nil) once and
// blocks in the kernel's queue of waiters (polling with LOCK_NB would lose
// to them) for at most limit. release closes the descriptor, which frees
// the lock. A caller that waited in vain leaves a goroutine blocked in
// flock(2) behind: it ends with the process, and closes the descriptor
// (freeing the lock at once should it have got it) if its flock returns.
func Lock(limit time.Duration, waiting func()) (release func(), err error) {
	return LockAt(LockPath, limit, waiting)
}

// LockAt is Lock on another file (a test's).
func LockAt(path string, limit time.Duration, waiting func()) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666) // close-on-exec, as Go opens every file
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		if waiting != nil {
			waiting()
		}
		done, abandoned := make(chan error), make(chan struct{})
		go func() {
			err := unix.Flock(fd, unix.LOCK_EX)
			select {
			case done <- err:
			case <-abandoned:
				_ = f.Close()
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				_ = f.Close()
				return nil, fmt.Errorf("taking %s: %w", path, err)
			}
		case <-time.After(limit):
			close(abandoned)
			return nil, fmt.Errorf("%s: not free within %v (a suite, the bench or the demo holds it; the suites take it themselves: do not run them under flock)", path, limit)
		}
	}
	return func() { _ = f.Close() }, nil
}
