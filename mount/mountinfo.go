//go:build linux

package mount

import (
	"bufio"
	"bytes"
	"io"
	"os"

	"github.com/cgfreeze/cgfreeze/procs"
	"github.com/moby/sys/mountinfo"
)

// The mountinfo readers. Each line of /proc/<pid>/mountinfo is parsed by
// github.com/moby/sys/mountinfo, the parser runc, containerd and moby use
// (fields, optional fields, the octal escapes of paths); eachMount reads
// the lines itself because that parser reads a stream with a 64 KiB line
// limit and stops at the first line it cannot parse, where cgfreeze must
// find the cgroup mounts past a long overlay line (many lowerdirs) or a
// line it does not understand. docs/design.md ("Reading mountinfo") says
// more.

// maxMountinfoLine bounds a mountinfo line: an overlay mount with many
// layers writes long lines; past this one the stream is not mountinfo.
const maxMountinfoLine = 1 << 20

// eachMount calls fn with each mount of a mountinfo stream, in order,
// until fn returns false. Lines that the parser refuses are skipped: the
// kernel writes cgroup mounts' lines short and whole.
func eachMount(r io.Reader, fn func(m *mountinfo.Info) bool) error {
	return eachMountLine(r, nil, fn)
}

// eachMountLine is eachMount of the lines that want (nil: all) accepts
// before they are parsed.
func eachMountLine(r io.Reader, want func(line []byte) bool, fn func(m *mountinfo.Info) bool) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), maxMountinfoLine)
	for s.Scan() {
		if want != nil && !want(s.Bytes()) {
			continue
		}
		ms, err := mountinfo.GetMountsFromReader(bytes.NewReader(s.Bytes()), nil)
		if err != nil || len(ms) != 1 {
			continue
		}
		if !fn(ms[0]) {
			return nil
		}
	}
	return s.Err()
}

// SuperOptions returns the superblock options of the first mount of type
// fstype in a /proc/<pid>/mountinfo stream, without "rw"/"ro", and whether
// one was found. For cgroup2 these are the hierarchy-wide flags in force
// (nsdelegate, memory_recursiveprot, ...).
func SuperOptions(r io.Reader, fstype string) ([]string, bool, error) {
	var opts []string
	found := false
	err := eachMount(r, func(m *mountinfo.Info) bool {
		if m.FSType != fstype {
			return true
		}
		found = true
		for _, o := range splitOptions(m.VFSOptions) {
			if o != "rw" && o != "ro" {
				opts = append(opts, o)
			}
		}
		return false
	})
	if err != nil {
		return nil, false, err
	}
	return opts, found, nil
}

func splitOptions(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// SuperOptionsFromFiles tries each mountinfo file in turn and returns the
// options of the first one that shows a mount of fstype.
func SuperOptionsFromFiles(fstype string, paths ...string) ([]string, bool) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		opts, ok, err := SuperOptions(f, fstype)
		f.Close()
		if err == nil && ok {
			return opts, true
		}
	}
	return nil, false
}

// Hierarchy is what one read of a mountinfo file shows of a file system
// type: HierarchyFromFile.
type Hierarchy struct {
	// Options are the superblock options of its first mount, as
	// SuperOptions returns them; Found tells that it has one.
	Options []string
	Found   bool
	// Roots are the mount points of its root, as RootMounts returns them.
	Roots []string
}

// HierarchyFromFile is SuperOptions and RootMounts of one mountinfo file,
// from one read and one parse of it (the resolution of a cgroup2 target
// from the initial cgroup namespace needs both). An unreadable file shows
// nothing.
func HierarchyFromFile(fstype, path string) Hierarchy {
	// With plain system calls: os.Open would offer the /proc file to Go's
	// poller (two epoll_ctl(2) calls).
	b, err := procs.ReadFile(path)
	if err != nil {
		return Hierarchy{}
	}
	// Only the lines of fstype are parsed: " - " ends a line's optional
	// fields and comes before its file system type, and cannot appear in
	// a path field, where the kernel writes a space as \040.
	tag := []byte(" - " + fstype + " ")
	var h Hierarchy
	err = eachMountLine(bytes.NewReader(b), func(line []byte) bool { return bytes.Contains(line, tag) }, func(m *mountinfo.Info) bool {
		if m.FSType != fstype {
			return true
		}
		if !h.Found {
			h.Found = true
			for _, o := range splitOptions(m.VFSOptions) {
				if o != "rw" && o != "ro" {
					h.Options = append(h.Options, o)
				}
			}
		}
		if m.Root == "/" {
			h.Roots = append(h.Roots, m.Mountpoint)
		}
		return true
	})
	if err != nil {
		// A line too long to be mountinfo: the first mount's options
		// stand if they came before it (SuperOptions stops there), the
		// list of roots does not (RootMounts fails).
		h.Roots = nil
	}
	return h
}

// RootMounts returns the mount points at which a /proc/<pid>/mountinfo
// stream shows the root ("/") of a file system of type fstype, in the order
// listed: for cgroup2, the places where the whole hierarchy is mounted.
func RootMounts(r io.Reader, fstype string) ([]string, error) {
	var out []string
	err := eachMount(r, func(m *mountinfo.Info) bool {
		if m.FSType == fstype && m.Root == "/" {
			out = append(out, m.Mountpoint)
		}
		return true
	})
	return out, err
}

// RootMountsFromFile is RootMounts of a mountinfo file; an unreadable file
// has none.
func RootMountsFromFile(fstype, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out, err := RootMounts(f, fstype)
	if err != nil {
		return nil
	}
	return out
}

// MountByID returns the root field and the mount point of the mount with
// ID id in a /proc/<pid>/mountinfo stream, and whether it was found.
func MountByID(r io.Reader, id uint64) (root, mountPoint string, found bool, err error) {
	err = eachMount(r, func(m *mountinfo.Info) bool {
		if m.ID < 0 || uint64(m.ID) != id {
			return true
		}
		root, mountPoint, found = m.Root, m.Mountpoint, true
		return false
	})
	return root, mountPoint, found, err
}
