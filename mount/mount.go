//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Spec says which cgroup hierarchy to mount.
type Spec struct {
	// Version is 1 or 2.
	Version int
	// Controllers is, for v1, the exact set of controllers co-mounted in the
	// hierarchy (the kernel refuses a subset), e.g. {"freezer"} or
	// {"cpu", "cpuacct"}; a named hierarchy is given as "name=<name>".
	Controllers []string
	// Options is, for v2, the superblock options to mount with. Mounting
	// cgroup2 from the initial cgroup namespace applies its options to the
	// whole hierarchy, so a caller there passes the options already in force
	// (see SuperOptions) or it would switch off, say, nsdelegate for the host.
	Options []string
}

// ErrNotPrivileged reports that the cgroup filesystem could not be mounted or
// a namespace could not be entered for lack of privilege.
var ErrNotPrivileged = errors.New("not privileged")

// FS is a private mount of one cgroup hierarchy, used through Do. A mount
// made in another cgroup namespace (Options.CgroupNamespace) lives on an OS
// thread of its own, which entered that namespace; any other is used from
// the calling goroutine under a lock, with no thread to start or to hand
// each call to (a wake-up of another thread costs about 100 µs here).
type FS struct {
	spec  Spec
	calls chan call
	// quit, closed by Close, ends the thread; calls is never closed, so a
	// Do that comes after Close (a goroutine of the caller's still about)
	// fails instead of sending on a closed channel.
	quit      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	// direct: no thread of its own; root is used under mu until closed.
	direct bool
	mu     sync.Mutex
	root   *Root
	closed bool
}

type call struct {
	fn     func(*Root) error
	result chan error
}

// Options says where a mount is made.
type Options struct {
	// CgroupNamespace is the path of a cgroup namespace file
	// (/proc/<pid>/ns/cgroup) to enter before mounting; empty stays in the
	// caller's. The mount is rooted at the root of that namespace.
	CgroupNamespace string
	// Existing, when set, is a directory where the hierarchy is mounted
	// already (the root of a v1 hierarchy, or of cgroup2). It is used as it
	// is, read-only or not, instead of a mount of cgfreeze's own: for hosts
	// where mounting is not allowed but the cgroup filesystem is visible.
	// It must be the root of a mount whose mountinfo root is "/" as the
	// caller's cgroup namespace sees it; anything else (a bind of a
	// subdirectory, a directory below a mount, a mount from another cgroup
	// namespace) is refused with ErrNotHierarchyRoot.
	Existing string
	// Clones are directories where the root of the hierarchy is mounted
	// (from the caller's mountinfo), tried in turn: the first that is a
	// writable root of the hierarchy is copied with open_tree(2) into a
	// detached mount, instead of making a new one. Copying applies no
	// superblock options, and costs microseconds where a new cgroup2 mount
	// from the initial cgroup namespace costs an RCU grace period (it
	// re-applies the hierarchy's flags). When none can be copied, a new
	// mount is made.
	Clones []string
	// CloneOnly makes Open fail with ErrNoClone when none of Clones can
	// be copied, instead of making a new mount: for a caller that tries
	// the usual places of the hierarchy's root before it reads, from
	// mountinfo, the options a new mount would need.
	CloneOnly bool
	// Fake, for unit tests, makes the mount a stand-in on a plain
	// directory (see Fake); nothing is mounted and no namespace entered.
	Fake *Fake
	// Root, when set, is the root directory of a mount of the hierarchy
	// that another process made (a Root.Open("/") passed over a Unix
	// socket): it is used as it is, for a process that takes over a
	// target another resolved (freezer.Share, freezer.Open).
	Root *os.File
}

// Open mounts the hierarchy described by spec. In the cgroup namespace
// opts names, it does so on a fresh OS thread, which it keeps for Do until
// Close; in the caller's own, on the calling goroutine, and Do runs on the
// goroutine that calls it.
func Open(spec Spec, opts Options) (*FS, error) {
	if opts.CgroupNamespace == "" {
		fd, err := openRoot(spec, opts, false)
		if err == nil {
			return &FS{spec: spec, direct: true, root: &Root{fd: fd, fake: opts.Fake}}, nil
		}
		if !errors.Is(err, errNeedThread) {
			return nil, err
		}
	}
	fs := &FS{spec: spec, calls: make(chan call), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go fs.serve(opts, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return fs, nil
}

// errNeedThread: the mount can only be made with mount(2), in a mount
// namespace of a thread's own.
var errNeedThread = errors.New("the mount needs a thread of its own")

// ErrNoClone reports that Options.CloneOnly found no mount to copy.
var ErrNoClone = errors.New("no writable mount of the hierarchy's root to copy")

// openRoot returns a file descriptor of the root of the hierarchy: the
// fake's, an existing mount's, a copy, or a new mount. With legacy false it
// does not fall back to mount(2) (errNeedThread).
func openRoot(spec Spec, opts Options, legacy bool) (int, error) {
	switch {
	case opts.Fake != nil:
		return opts.Fake.open()
	case opts.Root != nil:
		return unix.FcntlInt(opts.Root.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	case opts.Existing != "":
		return openExisting(spec, opts.Existing)
	}
	for _, dir := range opts.Clones {
		if fd, err := cloneHierarchy(spec, dir); err == nil {
			return fd, nil
		}
	}
	if opts.CloneOnly {
		return -1, fmt.Errorf("%w: %q", ErrNoClone, opts.Clones)
	}
	return mountHierarchy(spec, legacy)
}

// serve runs on its own goroutine, locked to its OS thread for its whole
// life. It never unlocks: the thread may have left the process's namespaces,
// so it must not run other goroutines again, and the Go runtime ends a thread
// whose goroutine exits while locked.
func (fs *FS) serve(opts Options, ready chan<- error) {
	runtime.LockOSThread()
	defer close(fs.done)

	if opts.CgroupNamespace != "" {
		if err := enterCgroupNamespace(opts.CgroupNamespace); err != nil {
			ready <- err
			return
		}
	}
	rootFD, err := openRoot(fs.spec, opts, true)
	if err != nil {
		ready <- err
		return
	}
	root := &Root{fd: rootFD, fake: opts.Fake}
	defer unix.Close(rootFD)
	ready <- nil
	for {
		select {
		case c := <-fs.calls:
			c.result <- c.fn(root)
		case <-fs.quit:
			return
		}
	}
}

// Do runs fn on the mount's thread (or, for a mount in the caller's
// cgroup namespace, on the calling goroutine, one call at a time) and
// returns its error. fn must not start goroutines that touch the cgroup
// filesystem, must not call runtime.LockOSThread or UnlockOSThread, must
// not change namespaces, must not call Do, and must not keep root after it
// returns: the thread is what gives root its cgroup namespace. Files fn
// opens must be closed before it returns.
func (fs *FS) Do(fn func(root *Root) error) error {
	if fs.direct {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if fs.closed {
			return errors.New("mount is closed")
		}
		return fn(fs.root)
	}
	c := call{fn: fn, result: make(chan error, 1)}
	select {
	case fs.calls <- c:
	case <-fs.quit:
		return errors.New("mount is closed")
	case <-fs.done:
		return errors.New("mount is closed")
	}
	return <-c.result
}

// Close releases the mount and ends its thread. The mount vanishes with the
// last file descriptor that refers to it.
func (fs *FS) Close() error {
	if fs.direct {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if !fs.closed {
			fs.closed = true
			_ = unix.Close(fs.root.fd)
		}
		return nil
	}
	fs.closeOnce.Do(func() { close(fs.quit) })
	<-fs.done
	return nil
}

func enterCgroupNamespace(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWCGROUP); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("enter cgroup namespace %s: %w (%w)", path, ErrNotPrivileged, err)
		}
		return fmt.Errorf("enter cgroup namespace %s: %w", path, err)
	}
	return nil
}

func fsType(spec Spec) string {
	if spec.Version == 1 {
		return "cgroup"
	}
	return "cgroup2"
}

func (s Spec) String() string {
	opts := s.Options
	if s.Version == 1 {
		opts = s.Controllers
	}
	if len(opts) == 0 {
		return fsType(s)
	}
	return fsType(s) + " (" + strings.Join(opts, ",") + ")"
}

// openExisting opens the root of a hierarchy that is mounted already, after
// checking that it is one of the version wanted and that it shows the root
// of the hierarchy as the calling thread's cgroup namespace sees it
// (checkExistingRoot): cgroup paths are relative to that root.
func openExisting(spec Spec, dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup mount %s: %w", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("statfs %s: %w", dir, err)
	}
	want := int64(unix.CGROUP2_SUPER_MAGIC)
	if spec.Version == 1 {
		want = unix.CGROUP_SUPER_MAGIC
	}
	if int64(st.Type) != want { //nolint:unconvert // Statfs_t.Type is int32 on 32-bit platforms
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not the root of a %s mount", dir, fsType(spec))
	}
	if err := checkExistingRoot(fd, dir); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// cloneHierarchy returns a file descriptor of a detached copy (open_tree
// OPEN_TREE_CLONE) of the mount at dir, which must be a writable mount of
// the root of the hierarchy of spec's version: the root directory of a
// cgroup file system is inode 1.
func cloneHierarchy(spec Spec, dir string) (int, error) {
	var st unix.Statfs_t
	var ino unix.Stat_t
	want := int64(unix.CGROUP2_SUPER_MAGIC)
	if spec.Version == 1 {
		want = unix.CGROUP_SUPER_MAGIC
	}
	// A look first, which copies nothing: a copy of another file system
	// (the tmpfs at /sys/fs/cgroup of a hybrid host) would be made and
	// dropped for nothing. The copy is checked again below.
	if unix.Statfs(dir, &st) != nil || int64(st.Type) != want { //nolint:unconvert // Statfs_t.Type is int32 on 32-bit platforms
		return -1, fmt.Errorf("%s is not a %s mount", dir, fsType(spec))
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", dir, err)
	}
	switch {
	case unix.Fstatfs(fd, &st) != nil || int64(st.Type) != want: //nolint:unconvert // Statfs_t.Type is int32 on 32-bit platforms
		err = fmt.Errorf("%s is not a %s mount", dir, fsType(spec))
	case st.Flags&unix.ST_RDONLY != 0:
		err = fmt.Errorf("%s is mounted read-only", dir)
	case unix.Fstat(fd, &ino) != nil || ino.Ino != 1:
		err = fmt.Errorf("%s is not the root of the hierarchy", dir)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	// As a new mount would be; a copy keeps the flags of the mount it
	// copies. Nothing in a cgroup file system can be executed or is a
	// device, so this is tidiness, and a kernel without mount_setattr
	// (before 5.12) goes without.
	_ = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODEV})
	return fd, nil
}

// mountHierarchy returns a file descriptor of the root of a new, detached
// mount of the hierarchy. Where fsmount(2) is missing (before Linux 5.2) it
// mounts with mount(2) if legacy allows, and returns errNeedThread if not.
func mountHierarchy(spec Spec, legacy bool) (int, error) {
	fd, err := fsmountHierarchy(spec)
	if errors.Is(err, unix.ENOSYS) {
		if !legacy {
			return -1, errNeedThread
		}
		fd, err = legacyMountHierarchy(spec)
	}
	if err == nil {
		return fd, nil
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return -1, fmt.Errorf("mount %s: %w (%w)", spec, ErrNotPrivileged, err)
	}
	return -1, fmt.Errorf("mount %s: %w", spec, err)
}

func fsmountHierarchy(spec Spec) (int, error) {
	fsfd, err := unix.Fsopen(fsType(spec), unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fsfd)
	set := func(opt string) error {
		if name, value, ok := strings.Cut(opt, "="); ok {
			return unix.FsconfigSetString(fsfd, name, value)
		}
		return unix.FsconfigSetFlag(fsfd, opt)
	}
	opts := spec.Options
	if spec.Version == 1 {
		opts = spec.Controllers
	}
	for _, opt := range opts {
		if err := set(opt); err != nil {
			return -1, fmt.Errorf("option %q: %w%s", opt, err, fsLog(fsfd))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("%w%s", err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return -1, err
	}
	return mfd, nil
}

// fsLog reads the messages the kernel left on an fs_context, which say far
// more than the errno (for example which controller is busy elsewhere).
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (kernel: " + strings.Join(msgs, "; ") + ")"
}

// legacyMountHierarchy mounts with mount(2) in a mount namespace of this
// thread's own, opens the root and detaches the mount at once: the open file
// keeps it alive and nothing is left attached anywhere.
func legacyMountHierarchy(spec Spec) (int, error) {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return -1, fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return -1, fmt.Errorf("make mounts private: %w", err)
	}
	// /proc exists in every container image; the mount over it lives in
	// this thread's namespace only and is detached below.
	const target = "/proc"
	data := strings.Join(spec.Options, ",")
	if spec.Version == 1 {
		data = strings.Join(spec.Controllers, ",")
	}
	if err := unix.Mount("cgfreeze", target, fsType(spec), unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, data); err != nil {
		return -1, err
	}
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if uerr := unix.Unmount(target, unix.MNT_DETACH); uerr != nil && err == nil {
		unix.Close(fd)
		return -1, fmt.Errorf("detach: %w", uerr)
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// ReadOnly tells whether a mount's file system refuses writes.
func (r *Root) ReadOnly() (bool, error) {
	if r.fake != nil {
		return false, nil
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(r.fd, &st); err != nil {
		return false, err
	}
	return st.Flags&unix.ST_RDONLY != 0, nil
}
