//go:build linux

package agent

// What the agent asks of Linux: the supervisor's channel (a socketpair),
// the watch on stdout's reader, the parent's pidfd, the terminal's width.
// sys_other.go has what the package does elsewhere.

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

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
