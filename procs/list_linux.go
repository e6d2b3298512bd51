//go:build linux

package procs

import (
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Listing /proc is not cheap on a proc filesystem mounted a moment ago, as
// an ephemeral container's is: the kernel makes a dentry and an inode for
// every process it lists (proc_fill_cache), so that 5000 processes take
// some 20 ms where a second listing of the same mount takes 4 (measured
// here; docs/performance.md). That work is done by the reading thread, and
// two readers share it: one from the start, the other seeked to the middle
// of the PID range, each on a CPU of its own.

const (
	// procTGIDOffset is the directory position of PID 0 in the root of a
	// proc filesystem (fs/proc/base.c: TGID_OFFSET, FIRST_PROCESS_ENTRY
	// + 2): a reader seeked to procTGIDOffset + n lists the PIDs from n
	// on, in increasing order. Nothing rests on it but the speed: the
	// first reader reads on until it meets the PID the second one started
	// at, wherever that is.
	procTGIDOffset = 256 + 2
	// splitMinPID: a namespace whose last PID is below it is read by one
	// reader; a second thread would cost more than it saves.
	splitMinPID = 1024
	// listBuf is a directory read's buffer, some 250 entries: the first
	// reader's overshoot past the second one's start is at most that.
	listBuf = 8 << 10
	// firstReadBuf is the second reader's first read, a few entries, so
	// that the first reader learns soon where to stop.
	firstReadBuf = 512
)

// errUnordered: a proc directory listed PIDs out of order, so the ranges
// cannot be joined; the listing is done again by one reader.
var errUnordered = errors.New("proc directory not in PID order")

// listPIDs lists the processes of procRoot, in two ranges at once where
// it is a proc filesystem of many processes, else in one read.
func listPIDs(procRoot string) ([]int, error) {
	last := lastPID(procRoot)
	if last < splitMinPID || !isProcfs(procRoot) {
		return listSequential(procRoot)
	}
	pids, err := listSplit(procRoot, last/2)
	if err != nil {
		// Whatever went wrong with the ranges, one plain read says
		// what is there, or what fails.
		return listSequential(procRoot)
	}
	return pids, nil
}

// lastPID is the last PID handed out in the caller's PID namespace, 0 when
// unknown: where to split the range. It is a hint only (procRoot may show
// another namespace, the PIDs may have wrapped).
func lastPID(procRoot string) int {
	b, err := ReadFile(filepath.Join(procRoot, "sys/kernel/ns_last_pid"))
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

func isProcfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// listSplit reads the PIDs below split and those from split on at once.
// The high reader publishes the first PID it read (start); the low reader
// stops once it has read a PID at or past start, or at the end of the
// directory (then it has everything, and the high reader is stopped).
func listSplit(procRoot string, split int) ([]int, error) {
	var start atomic.Int64
	start.Store(-1)
	var stop atomic.Bool
	type result struct {
		pids []int
		err  error
	}
	high := make(chan result, 1)
	go func() {
		pids, err := readHigh(procRoot, split, &start, &stop)
		high <- result{pids, err}
	}()
	low, complete, err := readLow(procRoot, &start)
	if err != nil || complete {
		stop.Store(true)
		<-high
		return low, err
	}
	h := <-high
	if h.err != nil {
		return nil, h.err
	}
	s := int(start.Load())
	n := 0
	for n < len(low) && low[n] < s {
		n++
	}
	return append(low[:n], h.pids...), nil
}

// readLow reads from the start of the directory until it has read a PID
// at or past the high reader's first (false) or the end (true).
func readLow(procRoot string, start *atomic.Int64) (pids []int, complete bool, err error) {
	fd, err := openDir(procRoot)
	if err != nil {
		return nil, false, err
	}
	defer unix.Close(fd)
	buf := make([]byte, listBuf)
	for {
		var n int
		pids, n, err = readEntries(fd, buf, pids)
		if err != nil {
			return nil, false, err
		}
		if n == 0 {
			return pids, true, nil
		}
		if s := start.Load(); s >= 0 && len(pids) > 0 && int64(pids[len(pids)-1]) >= s {
			return pids, false, nil
		}
	}
}

// readHigh reads from the position of PID split to the end, and sets
// start to the first PID it read (math.MaxInt64 for none) as soon as it
// knows it.
func readHigh(procRoot string, split int, start *atomic.Int64, stop *atomic.Bool) (pids []int, err error) {
	defer func() {
		if start.Load() < 0 {
			start.Store(math.MaxInt64)
		}
	}()
	fd, err := openDir(procRoot)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, int64(procTGIDOffset+split), 0); err != nil {
		return nil, err
	}
	buf := make([]byte, listBuf)
	size := firstReadBuf
	for !stop.Load() {
		var n int
		pids, n, err = readEntries(fd, buf[:size], pids)
		if err != nil {
			return nil, err
		}
		if len(pids) > 0 && start.Load() < 0 {
			start.Store(int64(pids[0]))
		}
		if n == 0 {
			return pids, nil
		}
		size = listBuf
	}
	return pids, nil
}

func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// readEntries makes one directory read and appends the PIDs it lists to
// pids; n is the bytes read, 0 at the end. PIDs must come in increasing
// order, as a proc filesystem lists them.
func readEntries(fd int, buf []byte, pids []int) (_ []int, n int, err error) {
	n, err = unix.Getdents(fd, buf)
	for errors.Is(err, unix.EINTR) {
		n, err = unix.Getdents(fd, buf)
	}
	if err != nil || n == 0 {
		return pids, 0, err
	}
	_, _, list := unix.ParseDirent(buf[:n], -1, make([]string, 0, n/24))
	for _, name := range list {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		if len(pids) > 0 && pid <= pids[len(pids)-1] {
			return pids, 0, errUnordered
		}
		pids = append(pids, pid)
	}
	return pids, n, nil
}
