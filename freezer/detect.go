//go:build linux

package freezer

import (
	"fmt"
	"path/filepath"

	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// DetectVersion tells which cgroup version to freeze through, as systemd and
// containerd decide it: by the file system type at sysCgroup (cgroup2: v2; a
// tmpfs with a v1 freezer hierarchy: v1, also on hybrid hosts; a tmpfs with
// only the unified hierarchy: v2), falling back to the entries of
// /proc/<pid>/cgroup when sysCgroup is absent.
func DetectVersion(sysCgroup string, cg procs.Cgroups) (int, error) {
	return detectVersion(statfsType, sysCgroup, cg)
}

func statfsType(p string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil //nolint:unconvert // Statfs_t.Type is int32 on 32-bit platforms
}

func detectVersion(fsType func(string) (int64, error), sysCgroup string, cg procs.Cgroups) (int, error) {
	if typ, err := fsType(sysCgroup); err == nil {
		switch typ {
		case unix.CGROUP2_SUPER_MAGIC:
			return 2, nil
		case unix.TMPFS_MAGIC:
			if typ, err := fsType(filepath.Join(sysCgroup, "freezer")); err == nil && typ == unix.CGROUP_SUPER_MAGIC {
				return 1, nil
			}
			if typ, err := fsType(filepath.Join(sysCgroup, "unified")); err == nil && typ == unix.CGROUP2_SUPER_MAGIC {
				return 2, nil
			}
		}
	}
	if _, ok := cg.V1["freezer"]; ok {
		return 1, nil
	}
	if cg.HasUnified {
		return 2, nil
	}
	return 0, fmt.Errorf("%w: neither a v1 freezer hierarchy nor cgroup v2 found (at %s or in /proc/<pid>/cgroup)", ErrNoFreezer, sysCgroup)
}
