//go:build linux

package agent

// What the agent asks of Linux: the supervisor's channel (a socketpair),
// the watch on stdout's reader, the parent's pidfd, the terminal's width.
// sys_other.go has what the package does elsewhere.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// yieldCPU offers this thread's CPU to the tasks waiting for it
// (sched_yield(2)); it does not wait.
func yieldCPU() { _, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// NewChannelPair makes the channel: the supervisor's end, and the end to
// hand to the holder (as its descriptor ChannelFD). Both are close-on-exec:
// only the holder's start passes its end on.
func NewChannelPair() (own, other *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair for the holder's channel: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "holder channel"), os.NewFile(uintptr(fds[1]), "supervisor channel"), nil
}

// InheritedChannel returns the holder's end of the channel, descriptor
// ChannelFD, after checking that it is a socket, and makes it close-on-exec.
func InheritedChannel() (*Channel, error) {
	var st unix.Stat_t
	if err := unix.Fstat(ChannelFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%w: descriptor %d is not a socket", ErrNoChannel, ChannelFD)
	}
	unix.CloseOnExec(ChannelFD)
	return NewChannel(os.NewFile(ChannelFD, "supervisor channel")), nil
}

// readWithFiles reads the channel with recvmsg(2), which also takes the
// descriptors passed with the bytes (a read(2) would drop them), received
// close-on-exec.
func readWithFiles(f *os.File, p []byte) (n int, files []*os.File, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	oob := make([]byte, unix.CmsgSpace(4*maxPassed))
	var oobn int
	cerr := rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, _, _, err = unix.Recvmsg(int(fd), p, oob, unix.MSG_CMSG_CLOEXEC)
			if !errors.Is(err, unix.EINTR) {
				// The channel is blocking (socketpair without
				// SOCK_NONBLOCK): EAGAIN does not happen.
				return true
			}
		}
	})
	if cerr != nil {
		return 0, nil, cerr
	}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for _, m := range msgs {
				fds, ferr := unix.ParseUnixRights(&m)
				if ferr != nil {
					continue
				}
				for _, fd := range fds {
					files = append(files, os.NewFile(uintptr(fd), "passed descriptor"))
				}
			}
		}
	}
	if err != nil {
		return 0, files, err
	}
	if n == 0 && len(p) > 0 {
		return 0, files, io.EOF
	}
	return n, files, nil
}

// writeWithFiles writes b with sendmsg(2), passing the descriptors of
// files with it (SCM_RIGHTS).
func writeWithFiles(f *os.File, b []byte, files []*os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	fds := make([]int, len(files))
	for i, file := range files {
		fds[i] = int(file.Fd())
	}
	oob := unix.UnixRights(fds...)
	var serr error
	cerr := rc.Write(func(fd uintptr) bool {
		for {
			var n int
			n, serr = unix.SendmsgN(int(fd), b, oob, nil, unix.MSG_NOSIGNAL)
			if errors.Is(serr, unix.EINTR) {
				continue
			}
			if serr == nil && n < len(b) {
				// The descriptors went with the first byte; the rest
				// is plain data.
				_, serr = unix.Write(int(fd), b[n:])
			}
			return true
		}
	})
	runtime.KeepAlive(files)
	if cerr != nil {
		return cerr
	}
	return serr
}

// peerClosed tells, without waiting, whether the far end of the channel
// f is closed: the process that held it ended.
func peerClosed(f *os.File) bool {
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}

// watchable returns the descriptor of f when it is a pipe or a socket:
// what poll(2) reports closed when its reader goes away.
func watchable(f *os.File) (int, bool) {
	var st unix.Stat_t
	fd := int(f.Fd())
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false
	}
	m := st.Mode & unix.S_IFMT
	return fd, m == unix.S_IFIFO || m == unix.S_IFSOCK
}

// watchClosed waits, in poll(2) with no event asked for, until the
// reader's end of fd goes away: a pipe then reports POLLERR, a socket
// POLLHUP. So a closed stdout is noticed while nothing is written (the
// hold writes nothing between frozen and thawed): `cgfreeze | head -c1`
// ends the hold at once.
func (w *Writer) watchClosed(fd int) {
	fds := []unix.PollFd{{Fd: int32(fd)}}
	for {
		_, err := unix.Poll(fds, -1)
		if err != nil && errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
			w.markGone()
		}
		return
	}
}

// OpenParent returns a pidfd of this process's parent. A pidfd names the
// parent for good, where its PID may be reused.
func OpenParent() (*os.File, error) {
	ppid := os.Getppid()
	if ppid <= 1 {
		return nil, fmt.Errorf("%w (parent PID %d: outside this PID namespace, or gone)", ErrParentInvisible, ppid)
	}
	fd, err := unix.PidfdOpen(ppid, 0)
	if err != nil {
		return nil, fmt.Errorf("watch the parent process %d: %w (Linux 5.3 or newer is needed)", ppid, err)
	}
	if os.Getppid() != ppid {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("%w: the parent process %d exited as cgfreeze started", ErrParentInvisible, ppid)
	}
	return os.NewFile(uintptr(fd), "parent pidfd"), nil
}

// waitExit blocks until the process of a pidfd exits.
func waitExit(pidfd *os.File) {
	fds := []unix.PollFd{{Fd: int32(pidfd.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil || !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// TerminalWidth returns the width of the terminal f in columns, 0 when
// unknown.
func TerminalWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
