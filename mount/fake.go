//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Fake turns a plain directory into a stand-in for a cgroup file system, for
// unit tests that run without root (the way opencontainers/cgroups' TestMode
// lets tests drive a fake cgroupfs): a Root opened with Options.Fake works on
// the directory's files as it would on a mount, and the test plays the
// kernel through the hooks. Three things a plain directory cannot give are
// stood in for:
//   - writes: a cgroup file takes one value per write(2) and acts on it;
//     OnWrite receives each one instead of the file (without OnWrite the
//     value replaces the file's content);
//   - extended attributes: trusted.* needs CAP_SYS_ADMIN, so the fake keeps
//     them in memory (Xattr reads them);
//   - notification: kernfs wakes poll(2) with POLLPRI when cgroup.events
//     changes, a regular file never does; Notify stands for the kernel's
//     notification and wakes every Watcher and Notifier of that file.
//
// inotify and flock work on the directory as they do on cgroupfs. Paths are
// cgroup paths relative to Dir, as Root takes them.
type Fake struct {
	// Dir is the directory that stands for the root of the hierarchy.
	Dir string
	// OnWrite, when set, receives every write to an existing file (the
	// error is what write(2) returns).
	OnWrite func(p, value string) error
	// OnMkdir, when set, is called after a directory is created through
	// the Root, to fill it with the cgroup's files.
	OnMkdir func(p string) error
	// OnRead, when set, answers reads of whole files (Root.ReadFile)
	// instead of the directory, as kernfs generates a cgroup file's
	// content at each read: a file the test's kernel rewrites is never
	// seen half-written. ok false reads the file from the directory.
	OnRead func(p string) (content string, ok bool, err error)
	// OnRmdir, when set, replaces the removal of a directory through the
	// Root (a cgroup directory holds files, which rmdir(2) refuses).
	OnRmdir func(p string) error

	mu      sync.Mutex
	xattrs  map[string]map[string]string
	watches map[string]map[int]bool // path -> eventfds
}

// NewFake returns a fake cgroup file system rooted at dir.
func NewFake(dir string) *Fake {
	return &Fake{Dir: dir, xattrs: map[string]map[string]string{}, watches: map[string]map[int]bool{}}
}

func fakeKey(p string) string {
	name, err := rel(p)
	if err != nil {
		return p
	}
	return name
}

// Notify wakes whatever watches the file p, as the kernel's notification
// of a cgroup.events change does.
func (f *Fake) Notify(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	for fd := range f.watches[fakeKey(p)] {
		_, _ = unix.Write(fd, one)
	}
}

// Xattr returns an extended attribute the Root set on p.
func (f *Fake) Xattr(p, name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.xattrs[fakeKey(p)][name]
	return v, ok
}

// Xattrs returns the paths that carry the extended attribute name.
func (f *Fake) Xattrs(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var paths []string
	for p, m := range f.xattrs {
		if _, ok := m[name]; ok {
			paths = append(paths, p)
		}
	}
	return paths
}

// SetXattr sets an extended attribute as another process would.
func (f *Fake) SetXattr(p, name, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(p)
	if f.xattrs[k] == nil {
		f.xattrs[k] = map[string]string{}
	}
	f.xattrs[k][name] = value
}

// Forget drops the extended attributes of p and of everything below it, for
// a test's kernel that removes a cgroup.
func (f *Fake) Forget(p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(p)
	for q := range f.xattrs {
		if q == k || k == "." || strings.HasPrefix(q, k+"/") {
			delete(f.xattrs, q)
		}
	}
}

func (f *Fake) watch(p string) (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fakeKey(p)
	if f.watches[k] == nil {
		f.watches[k] = map[int]bool{}
	}
	f.watches[k][fd] = true
	return fd, nil
}

func (f *Fake) unwatch(p string, fd int) {
	f.mu.Lock()
	delete(f.watches[fakeKey(p)], fd)
	f.mu.Unlock()
	_ = unix.Close(fd)
}

// Watching tells how many watches are open on p, for tests that check that
// nothing is left.
func (f *Fake) Watching(p string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watches[fakeKey(p)])
}

func (f *Fake) open() (int, error) {
	fd, err := unix.Open(f.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open fake cgroup mount %s: %w", f.Dir, err)
	}
	return fd, nil
}

func (f *Fake) write(r *Root, p, value string) error {
	if ok, err := r.Exists(p); err != nil {
		return err
	} else if !ok {
		return &os.PathError{Op: "open", Path: p, Err: unix.ENOENT}
	}
	if f.OnWrite != nil {
		if err := f.OnWrite(fakeKey(p), value); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return err
			}
			return &os.PathError{Op: "write", Path: p, Err: err}
		}
		return nil
	}
	name, _ := rel(p)
	return os.WriteFile(filepath.Join(f.Dir, name), []byte(value), 0o644)
}

func (f *Fake) read(p string) (string, bool, error) {
	if f.OnRead == nil {
		return "", false, nil
	}
	v, ok, err := f.OnRead(fakeKey(p))
	if err != nil {
		var pe *os.PathError
		if !errors.As(err, &pe) {
			err = &os.PathError{Op: "read", Path: p, Err: err}
		}
	}
	return v, ok, err
}

func (f *Fake) rmdir(r *Root, p string) error {
	if f.OnRmdir != nil {
		return f.OnRmdir(fakeKey(p))
	}
	children, err := r.Children(p)
	if err != nil {
		return err
	}
	if len(children) > 0 {
		return &os.PathError{Op: "rmdir", Path: p, Err: unix.EBUSY}
	}
	name, _ := rel(p)
	if err := os.RemoveAll(filepath.Join(f.Dir, name)); err != nil {
		return err
	}
	f.Forget(p)
	return nil
}

func (f *Fake) getXattr(r *Root, p, name string) (string, error) {
	if ok, err := r.Exists(p); err != nil || !ok {
		return "", existsErr(p, err)
	}
	v, _ := f.Xattr(p, name)
	return v, nil
}

func (f *Fake) setXattr(r *Root, p, name, value string) error {
	if ok, err := r.Exists(p); err != nil || !ok {
		return existsErr(p, err)
	}
	f.SetXattr(p, name, value)
	return nil
}

func (f *Fake) removeXattr(r *Root, p, name string) error {
	if ok, err := r.Exists(p); err != nil || !ok {
		return existsErr(p, err)
	}
	f.mu.Lock()
	delete(f.xattrs[fakeKey(p)], name)
	f.mu.Unlock()
	return nil
}

func existsErr(p string, err error) error {
	if err != nil {
		return err
	}
	return &os.PathError{Op: "open", Path: p, Err: unix.ENOENT}
}

// fakeWriter is an open cgroup file of a fake: each Write is one value.
type fakeWriter struct {
	r *Root
	p string
}

func (w fakeWriter) Write(b []byte) (int, error) {
	if err := w.r.fake.write(w.r, w.p, string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (fakeWriter) Close() error { return nil }
