//go:build linux

package mount

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Root is the root directory of a mount, valid only inside FS.Do. Every path
// it takes is a cgroup path relative to that root ("/" or "" is the root
// itself); paths that climb out with ".." are refused.
type Root struct {
	fd int
	// fake, when set, makes the root a stand-in for tests (see Fake).
	fake *Fake
}

// IsFake tells whether the root is a test's stand-in (Options.Fake): no
// kernel keeps /proc in step with it.
func (r *Root) IsFake() bool { return r.fake != nil }

// ErrOutside reports a path that leaves the mount.
var ErrOutside = errors.New("path leaves the cgroup mount")

func rel(p string) (string, error) {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q: %w", p, ErrOutside)
		}
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}

// Open opens a file below the root with the given flags.
func (r *Root) Open(p string, flags int) (*os.File, error) {
	name, err := rel(p)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(r.fd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// ReadFile returns a file's content with surrounding white space removed.
func (r *Root) ReadFile(p string) (string, error) {
	if r.fake != nil {
		if v, ok, err := r.fake.read(p); ok || err != nil {
			return strings.TrimSpace(v), err
		}
	}
	f, err := r.Open(p, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return "", &os.PathError{Op: "read", Path: p, Err: unwrapPathErr(err)}
	}
	return strings.TrimSpace(string(b)), nil
}

// WriteFile writes value to an existing file in one write(2), as cgroup
// files want; the error names the path and the value.
func (r *Root) WriteFile(p, value string) error {
	if r.fake != nil {
		return r.fake.write(r, p, value)
	}
	f, err := r.Open(p, unix.O_WRONLY)
	if err != nil {
		return fmt.Errorf("write %q: %w", value, err)
	}
	defer f.Close()
	return WriteValue(f, value)
}

// OpenWrite opens a cgroup file for writing, for a caller that writes many
// values to it (one PID at a time to cgroup.procs): each Write is one
// write(2), one value.
func (r *Root) OpenWrite(p string) (io.WriteCloser, error) {
	if r.fake != nil {
		if ok, err := r.Exists(p); err != nil || !ok {
			return nil, existsErr(p, err)
		}
		return fakeWriter{r: r, p: p}, nil
	}
	return r.Open(p, unix.O_WRONLY)
}

// WriteValue writes value to an open cgroup file in one write(2).
func WriteValue(f *os.File, value string) error {
	if _, err := f.Write([]byte(value)); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, f.Name(), unwrapPathErr(err))
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Mkdir creates a cgroup.
func (r *Root) Mkdir(p string) error {
	name, err := rel(p)
	if err != nil {
		return err
	}
	if err := unix.Mkdirat(r.fd, name, 0o755); err != nil {
		return &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	if r.fake != nil && r.fake.OnMkdir != nil {
		return r.fake.OnMkdir(fakeKey(p))
	}
	return nil
}

// Rmdir removes an empty cgroup. The kernel refuses (EBUSY) while a
// process is still being moved out, so it retries for up to rmdirWait.
func (r *Root) Rmdir(p string) error {
	name, err := rel(p)
	if err != nil {
		return err
	}
	if r.fake != nil {
		return r.fake.rmdir(r, p)
	}
	const rmdirWait = time.Second
	deadline := time.Now().Add(rmdirWait)
	for {
		err := unix.Unlinkat(r.fd, name, unix.AT_REMOVEDIR)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return &os.PathError{Op: "rmdir", Path: p, Err: err}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Exists tells whether a path exists below the root.
func (r *Root) Exists(p string) (bool, error) {
	name, err := rel(p)
	if err != nil {
		return false, err
	}
	var st unix.Stat_t
	err = unix.Fstatat(r.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return true, nil
}

// Children lists the names of the child cgroups of a cgroup.
func (r *Root) Children(p string) ([]string, error) {
	f, err := r.Open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// GetXattr reads an extended attribute of a cgroup directory; a missing
// attribute is ("", nil).
func (r *Root) GetXattr(p, name string) (string, error) {
	if r.fake != nil {
		return r.fake.getXattr(r, p, name)
	}
	f, err := r.Open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := unix.Fgetxattr(int(f.Fd()), name, buf)
	if errors.Is(err, unix.ENODATA) {
		return "", nil
	}
	if err != nil {
		return "", &os.PathError{Op: "getxattr " + name, Path: p, Err: err}
	}
	return string(buf[:n]), nil
}

// SetXattr sets an extended attribute of a cgroup directory.
func (r *Root) SetXattr(p, name, value string) error {
	if r.fake != nil {
		return r.fake.setXattr(r, p, name, value)
	}
	f, err := r.Open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fsetxattr(int(f.Fd()), name, []byte(value), 0); err != nil {
		return &os.PathError{Op: "setxattr " + name, Path: p, Err: err}
	}
	return nil
}

// RemoveXattr removes an extended attribute; a missing one is no error.
func (r *Root) RemoveXattr(p, name string) error {
	if r.fake != nil {
		return r.fake.removeXattr(r, p, name)
	}
	f, err := r.Open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fremovexattr(int(f.Fd()), name); err != nil && !errors.Is(err, unix.ENODATA) {
		return &os.PathError{Op: "removexattr " + name, Path: p, Err: err}
	}
	return nil
}
