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
// the first that ends. Errors are for leases that cannot be watched.
func startLeases(leases []string, stdin io.Reader) (<-chan string, error) {
	ended := make(chan string, len(leases))
	for _, l := range leases {
		switch l {
		case leaseStdin:
			go func() {
				_, _ = io.Copy(io.Discard, stdin)
				ended <- leaseStdin
			}()
		case leaseParent:
			wait, err := watchParent()
			if err != nil {
				return nil, err
			}
			go func() {
				wait()
				ended <- leaseParent
			}()
		}
	}
	return ended, nil
}

// watchParent returns a function that blocks until cgfreeze's parent exits.
// A pidfd names the parent for good, where its PID may be reused.
func watchParent() (func(), error) {
	ppid := os.Getppid()
	if ppid <= 1 {
		return nil, fmt.Errorf("--lease parent: cgfreeze's parent is not visible (parent PID %d: it is outside this PID namespace, or gone); use --lease stdin", ppid)
	}
	fd, err := unix.PidfdOpen(ppid, 0)
	if err != nil {
		return nil, fmt.Errorf("--lease parent: watch parent process %d: %w (Linux 5.3 or newer is needed)", ppid, err)
	}
	if os.Getppid() != ppid {
		// It died before the pidfd was opened; the pidfd may name a
		// newcomer with the same PID.
		_ = unix.Close(fd)
		return func() {}, nil
	}
	return func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if err == nil || !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}, nil
}
