package conns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ParseSocketLink returns the inode of a /proc/<pid>/fd link's target when
// it is a socket ("socket:[12345]").
func ParseSocketLink(target string) (uint64, bool) {
	rest, ok := strings.CutPrefix(target, "socket:[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, false
	}
	ino, err := strconv.ParseUint(rest[:len(rest)-1], 10, 64)
	return ino, err == nil
}

// SocketInodes returns the inodes of the sockets that process pid has open,
// read from the links in <procRoot>/<pid>/fd. A process that exited returns
// an error wrapping fs.ErrNotExist. Descriptors closed while the directory
// is read are skipped.
func SocketInodes(procRoot string, pid int) ([]uint64, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			err = fmt.Errorf("%s: %w", dir, fs.ErrNotExist)
		}
		return nil, err
	}
	var out []uint64
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := ParseSocketLink(target); ok {
			out = append(out, ino)
		}
	}
	return out, nil
}

// processes lists the numeric entries of a proc filesystem.
func processes(procRoot string) ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
