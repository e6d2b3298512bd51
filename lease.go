package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// A lease ties a hold to its caller: the hold ends, and the target is
// thawed, when the caller goes away.
const (
	// leaseStdin ends the hold when stdin reaches EOF: the calling tool
	// closed its end of the pipe, or died.
	leaseStdin = "stdin"
	// leaseParent ends the hold when cgfreeze's parent process exits.
	leaseParent = "parent"
)

// parseLeases checks the values of --lease.
func parseLeases(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, l := range strings.Split(v, ",") {
			switch l = strings.TrimSpace(l); l {
			case leaseStdin, leaseParent:
				out = append(out, l)
			default:
				return nil, fmt.Errorf("--lease must be stdin or parent, not %q", l)
			}
		}
	}
	return out, nil
}

// startLeases starts watching the leases; the channel receives the name of
// the first that ends. parent is a pidfd of the process whose exit ends
// the parent lease, or nil.
func startLeases(leases []string, stdin io.Reader, parent *os.File) <-chan string {
	ended := make(chan string, len(leases)+1)
	for _, l := range leases {
		if l == leaseStdin {
			go func() {
				_, _ = io.Copy(io.Discard, stdin)
				ended <- leaseStdin
			}()
		}
	}
	if parent != nil {
		go func() {
			waitExit(parent)
			ended <- leaseParent
		}()
	}
	return ended
}

// openParent returns a pidfd of cgfreeze's parent. A pidfd names the
// parent for good, where its PID may be reused; it is passed on to the
// holder, whose own parent is the supervisor.
func openParent() (*os.File, error) {
	ppid := os.Getppid()
	if ppid <= 1 {
		return nil, fmt.Errorf("--lease parent: cgfreeze's parent is not visible (parent PID %d: it is outside this PID namespace, or gone); use --lease stdin", ppid)
	}
	fd, err := unix.PidfdOpen(ppid, 0)
	if err != nil {
		return nil, fmt.Errorf("--lease parent: watch parent process %d: %w (Linux 5.3 or newer is needed)", ppid, err)
	}
	if os.Getppid() != ppid {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("--lease parent: the parent process %d exited as cgfreeze started", ppid)
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
