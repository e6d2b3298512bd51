//go:build unix

package procs

import (
	"bytes"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ReadFile reads a small /proc file with plain system calls: os.ReadFile
// also offers each file to the Go runtime's poller (fcntl, epoll_ctl and
// back), which costs more than the read on a path that reads several
// such files before a freeze. Errors are *os.PathError, as os.ReadFile's.
func ReadFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b.Bytes(), nil
		}
		if b.Len() == 0 && n < len(buf) {
			// The common case: the whole file in one read.
			return buf[:n], nil
		}
		b.Write(buf[:n])
	}
}
