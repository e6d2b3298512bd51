//go:build linux

package mount

import (
	"bytes"
	"encoding/binary"
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
	fd, err := r.openat(p, flags)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openat opens a file below the root as a bare descriptor, for the calls
// that open, use and close a file at once: an *os.File costs more than the
// system calls here (the fcntl(2) of os.NewFile, a cleanup registered with
// the runtime), on a path that makes a dozen such calls before a freeze's
// write.
func (r *Root) openat(p string, flags int) (int, error) {
	name, err := rel(p)
	if err != nil {
		return -1, err
	}
	for {
		fd, err := unix.Openat(r.fd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return fd, nil
	}
}

// ReadFile returns a file's content with surrounding white space removed.
func (r *Root) ReadFile(p string) (string, error) {
	if r.fake != nil {
		if v, ok, err := r.fake.read(p); ok || err != nil {
			return strings.TrimSpace(v), err
		}
	}
	fd, err := r.openat(p, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	// Most cgroup files fit the first buffer; reading goes on to the end
	// of the file all the same (a short read of a long seq_file such as
	// cgroup.procs is not its end).
	var small [512]byte
	b := small[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", &os.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return strings.TrimSpace(string(b)), nil
		}
		b = b[:len(b)+n]
	}
}

// WriteFile writes value to an existing file in one write(2), as cgroup
// files want; the error names the path and the value.
func (r *Root) WriteFile(p, value string) error {
	if r.fake != nil {
		return r.fake.write(r, p, value)
	}
	fd, err := r.openat(p, unix.O_WRONLY)
	if err != nil {
		return fmt.Errorf("write %q: %w", value, err)
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Write(fd, []byte(value))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write %q to %s: %w", value, p, err)
		}
		return nil
	}
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
	fd, err := r.openat(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return children(fd, p)
}

// ChildrenAt is Children of the cgroup directory p that dir holds open
// (the holder's lock): it reads dir again from its start.
func (r *Root) ChildrenAt(dir *os.File, p string) ([]string, error) {
	fd := int(dir.Fd())
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, &os.PathError{Op: "seek", Path: p, Err: err}
	}
	return children(fd, p)
}

// children reads the directory entries of fd, from its offset to the end,
// and returns the names of the directories but "." and "..": getdents64(2)
// and its d_type, without the *os.File's directory reader (a DirEntry, a
// string and a type lookup per entry, some 30 files a cgroup).
func children(fd int, p string) ([]string, error) {
	var names []string
	// On the heap: a frame this large would grow a goroutine's first
	// stack (a copy of it) on the way to a freeze.
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "readdirent", Path: p, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		for b := buf[:n]; len(b) > 0; {
			// struct linux_dirent64: d_ino u64, d_off s64, d_reclen
			// u16, d_type u8, then d_name ending in a NUL.
			const nameOff = 19
			if len(b) < nameOff {
				return nil, &os.PathError{Op: "readdirent", Path: p, Err: unix.EIO}
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < nameOff || reclen > len(b) {
				return nil, &os.PathError{Op: "readdirent", Path: p, Err: unix.EIO}
			}
			typ, name := b[18], b[nameOff:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			if typ == unix.DT_UNKNOWN {
				// A file system that does not say (none that holds
				// cgroups; a test's directory may be one).
				var st unix.Stat_t
				if err := unix.Fstatat(fd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					continue // removed meanwhile
				}
				if st.Mode&unix.S_IFMT == unix.S_IFDIR {
					typ = unix.DT_DIR
				}
			}
			if typ == unix.DT_DIR {
				names = append(names, string(name))
			}
		}
	}
}

// GetXattr reads an extended attribute of a cgroup directory; a missing
// attribute is ("", nil).
func (r *Root) GetXattr(p, name string) (string, error) {
	return r.GetXattrAt(nil, p, name)
}

// xattrSizeMax is the kernel's limit on an extended attribute's value
// (XATTR_SIZE_MAX).
const xattrSizeMax = 64 * 1024

// GetXattrAt is GetXattr through dir, the cgroup directory p held open
// (the holder's lock), or, when dir is nil, through p opened for it.
func (r *Root) GetXattrAt(dir *os.File, p, name string) (string, error) {
	if r.fake != nil {
		return r.fake.getXattr(r, p, name)
	}
	fd, done, err := r.dirFD(dir, p)
	if err != nil {
		return "", err
	}
	defer done()
	// cgfreeze's mark takes some 150 bytes; a longer value is read again
	// in a buffer of its size.
	var small [512]byte
	buf := small[:]
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < xattrSizeMax {
			buf = make([]byte, xattrSizeMax)
			continue
		}
		if errors.Is(err, unix.ENODATA) {
			return "", nil
		}
		if err != nil {
			return "", &os.PathError{Op: "getxattr " + name, Path: p, Err: err}
		}
		return string(buf[:n]), nil
	}
}

// SetXattr sets an extended attribute of a cgroup directory.
func (r *Root) SetXattr(p, name, value string) error {
	return r.SetXattrAt(nil, p, name, value)
}

// SetXattrAt is SetXattr through dir, as GetXattrAt.
func (r *Root) SetXattrAt(dir *os.File, p, name, value string) error {
	if r.fake != nil {
		return r.fake.setXattr(r, p, name, value)
	}
	fd, done, err := r.dirFD(dir, p)
	if err != nil {
		return err
	}
	defer done()
	if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
		return &os.PathError{Op: "setxattr " + name, Path: p, Err: err}
	}
	return nil
}

// RemoveXattr removes an extended attribute; a missing one is no error.
func (r *Root) RemoveXattr(p, name string) error {
	if r.fake != nil {
		return r.fake.removeXattr(r, p, name)
	}
	fd, done, err := r.dirFD(nil, p)
	if err != nil {
		return err
	}
	defer done()
	if err := unix.Fremovexattr(fd, name); err != nil && !errors.Is(err, unix.ENODATA) {
		return &os.PathError{Op: "removexattr " + name, Path: p, Err: err}
	}
	return nil
}

// dirFD returns the descriptor of dir, or of the directory p opened for
// the caller when dir is nil, and what the caller calls when done with it.
func (r *Root) dirFD(dir *os.File, p string) (fd int, done func(), err error) {
	if dir != nil {
		return int(dir.Fd()), func() {}, nil
	}
	fd, err = r.openat(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, nil, err
	}
	return fd, func() { _ = unix.Close(fd) }, nil
}
