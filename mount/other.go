//go:build !linux

package mount

import (
	"errors"
	"io"
	"os"
)

// Off Linux there are no cgroups: the package builds (so that a program
// that imports cgfreeze's packages builds on a laptop) and everything that
// would reach a cgroup or a mount fails with ErrNotLinux. The Linux files
// document each identifier.

// ErrNotLinux: cgroups and their mounts exist on Linux only.
var ErrNotLinux = errors.New("cgroup mounts work on Linux only")

// Errors of the Linux API, for callers that test for them.
var (
	ErrNotHierarchyRoot = errors.New("not the root of the cgroup hierarchy")
	ErrNotPrivileged    = errors.New("not privileged")
	ErrOutside          = errors.New("path leaves the cgroup mount")
	ErrNoClone          = errors.New("no writable mount of the hierarchy's root to copy")
)

// Spec describes a cgroup hierarchy (see the Linux build).
type Spec struct {
	Version     int
	Controllers []string
	Options     []string
}

// String names the hierarchy.
func (s Spec) String() string { return "cgroup hierarchy (Linux only)" }

// Options says where a mount is made (see the Linux build).
type Options struct {
	CgroupNamespace string
	Existing        string
	Clones          []string
	CloneOnly       bool
	Fake            *Fake
	Root            *os.File
}

// Fake is the unit tests' stand-in mount (Linux only).
type Fake struct{}

// FS is a private mount of one cgroup hierarchy (Linux only).
type FS struct{}

// Root is an open cgroup mount (Linux only).
type Root struct{}

// Open fails with ErrNotLinux off Linux.
func Open(spec Spec, opts Options) (*FS, error) { return nil, ErrNotLinux }

// Close does nothing off Linux.
func (fs *FS) Close() error { return nil }

// Do fails with ErrNotLinux off Linux.
func (fs *FS) Do(fn func(root *Root) error) error { return ErrNotLinux }

// WriteValue fails with ErrNotLinux off Linux.
func WriteValue(f *os.File, value string) error { return ErrNotLinux }

// SuperOptions fails with ErrNotLinux off Linux (there is no mountinfo).
func SuperOptions(r io.Reader, fstype string) ([]string, bool, error) { return nil, false, ErrNotLinux }

// SuperOptionsFromFiles finds nothing off Linux.
func SuperOptionsFromFiles(fstype string, paths ...string) ([]string, bool) { return nil, false }

// Hierarchy is what one read of a mountinfo file shows of a file system
// type.
type Hierarchy struct {
	Options []string
	Found   bool
	Roots   []string
}

// HierarchyFromFile finds nothing off Linux.
func HierarchyFromFile(fstype, path string) Hierarchy { return Hierarchy{} }

// RootMounts fails with ErrNotLinux off Linux.
func RootMounts(r io.Reader, fstype string) ([]string, error) { return nil, ErrNotLinux }

// RootMountsFromFile finds nothing off Linux.
func RootMountsFromFile(fstype, path string) []string { return nil }

// MountByID fails with ErrNotLinux off Linux.
func MountByID(r io.Reader, id uint64) (root, mountPoint string, found bool, err error) {
	return "", "", false, ErrNotLinux
}
