//go:build linux

package conns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// ioTimeout bounds every send and receive on the netlink socket: the kernel
// answers at once, so a silent socket means something is wrong, and cgfreeze
// waits for nothing without a bound.
const ioTimeout = 5 * time.Second

// Diag is a NETLINK_SOCK_DIAG socket. A netlink socket belongs to the network
// namespace it was created in for its whole life, whichever thread uses it
// later, so the namespace is only entered to create it. Not safe for
// concurrent use.
type Diag struct {
	fd  int
	seq uint32
	buf []byte
}

// Open creates a sock_diag socket in the network namespace at nsPath (a
// /proc/<pid>/ns/net file), or in the caller's own one when nsPath is "".
// wantIno, when not 0, is the namespace's inode as read earlier: Open refuses
// a file that now names another namespace (its process exited and the PID
// was reused).
func Open(nsPath string, wantIno uint64) (*Diag, error) {
	var fd int
	create := func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return fmt.Errorf("create a sock_diag netlink socket: %w", err)
		}
		return nil
	}
	var err error
	if nsPath == "" {
		err = create()
	} else {
		err = InNetns(nsPath, wantIno, create)
	}
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(ioTimeout.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("set a timeout on the sock_diag socket: %w", err)
		}
	}
	// Error answers need not echo the whole request back.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	return &Diag{fd: fd, buf: make([]byte, 64*1024)}, nil
}

// Close closes the socket.
func (d *Diag) Close() error {
	return unix.Close(d.fd)
}

// InNetns runs fn on a new goroutine whose OS thread has entered the network
// namespace at nsPath (setns(CLONE_NEWNET) acts on the calling thread only)
// and returns fn's error. wantIno, when not 0, must be the namespace's inode.
//
// Once setns succeeded the thread is never unlocked: its goroutine exits
// still locked and the Go runtime ends the thread, so no other goroutine
// ever runs in the wrong namespace (mount.FS.serve does the same for cgroup
// namespaces). fn therefore must not call runtime.UnlockOSThread, must not
// rely on goroutines it starts being in the namespace (they run on other
// threads), and should only create what must be created there (sockets keep
// the namespace they were made in) and return. A thread that ends takes
// along the PR_SET_PDEATHSIG of the children it forked: a caller that starts
// children with Pdeathsig must know that any of its threads may be the one
// InNetns locks and ends.
func InNetns(nsPath string, wantIno uint64, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		entered, err := enterNetns(nsPath, wantIno)
		if !entered {
			// setns never happened: the thread is as it was.
			runtime.UnlockOSThread()
		}
		if err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func enterNetns(nsPath string, wantIno uint64) (bool, error) {
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer unix.Close(fd)
	if wantIno != 0 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return false, fmt.Errorf("stat network namespace %s: %w", nsPath, err)
		}
		if st.Ino != wantIno {
			return false, fmt.Errorf("%s is network namespace %d now, not %d (the process exited and its PID was reused)", nsPath, st.Ino, wantIno)
		}
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w: %w", ErrNotPermitted, err)
		}
		return false, fmt.Errorf("enter network namespace %s: %w", nsPath, err)
	}
	return true, nil
}

// Dump lists the TCP sockets of one family (unix.AF_INET or unix.AF_INET6)
// in the given states (a bit mask of 1<<state) in the socket's network
// namespace. A dump that the kernel marks inconsistent (the tables changed
// meanwhile) is retried a few times.
func (d *Diag) Dump(family uint8, states uint32) ([]Socket, error) {
	const tries = 5
	var err error
	for range tries {
		var socks []Socket
		socks, err = d.dumpOnce(family, states)
		if !errors.Is(err, errDumpInterrupted) {
			return socks, err
		}
	}
	return nil, fmt.Errorf("dump %s TCP sockets: %w, %d times", familyName(family), err, tries)
}

func (d *Diag) dumpOnce(family uint8, states uint32) ([]Socket, error) {
	d.seq++
	seq := d.seq
	if err := d.send(DumpRequest(seq, family, states)); err != nil {
		return nil, fmt.Errorf("dump %s TCP sockets: %w", familyName(family), err)
	}
	var all []Socket
	for {
		b, err := d.recv()
		if err != nil {
			return nil, fmt.Errorf("dump %s TCP sockets: %w", familyName(family), err)
		}
		socks, done, err := parseDump(b, seq)
		if err != nil {
			if errors.Is(err, errDumpInterrupted) {
				d.drain(seq, done)
				return nil, err
			}
			return nil, fmt.Errorf("dump %s TCP sockets: %w", familyName(family), err)
		}
		all = append(all, socks...)
		if done {
			return all, nil
		}
	}
}

// drain reads the rest of an abandoned dump, so that the next request's
// answer is not mixed with it.
func (d *Diag) drain(seq uint32, done bool) {
	for !done {
		b, err := d.recv()
		if err != nil {
			return
		}
		_ = eachMessage(b, func(typ, _ uint16, mseq uint32, _ []byte) error {
			done = done || (mseq == seq && (typ == unix.NLMSG_DONE || typ == unix.NLMSG_ERROR))
			return nil
		})
	}
}

// Destroy aborts the socket s, identified by its dumped addresses and
// cookie: an established TCP socket sends a reset to its peer, and its
// owner's next call on it fails with ECONNABORTED. Errors wrap
// ErrNotSupported, ErrNotPermitted or ErrGone where they apply.
func (d *Diag) Destroy(s Socket) error {
	d.seq++
	seq := d.seq
	if err := d.send(DestroyRequest(seq, s)); err != nil {
		return fmt.Errorf("abort %s: %w", s, err)
	}
	for {
		b, err := d.recv()
		if err != nil {
			return fmt.Errorf("abort %s: %w", s, err)
		}
		found, err := parseAck(b, seq)
		if !found && err == nil {
			continue
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EOPNOTSUPP):
			return fmt.Errorf("abort %s: %w (%w)", s, ErrNotSupported, err)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return fmt.Errorf("abort %s: %w (%w)", s, ErrNotPermitted, err)
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESTALE):
			return fmt.Errorf("abort %s: %w (%w)", s, ErrGone, err)
		}
		return fmt.Errorf("abort %s: %w", s, err)
	}
}

func (d *Diag) send(b []byte) error {
	return unix.Sendto(d.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

func (d *Diag) recv() ([]byte, error) {
	for {
		n, _, flags, _, err := unix.Recvmsg(d.fd, d.buf, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return nil, fmt.Errorf("no answer from the kernel within %v", ioTimeout)
		}
		if err != nil {
			return nil, err
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("netlink message larger than %d bytes", len(d.buf))
		}
		return d.buf[:n], nil
	}
}

func familyName(family uint8) string {
	switch family {
	case unix.AF_INET:
		return "IPv4"
	case unix.AF_INET6:
		return "IPv6"
	}
	return fmt.Sprintf("family %d", family)
}

// ownNetns returns the inode of the caller's network namespace.
func ownNetns() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: "/proc/thread-self/ns/net", Err: err}
	}
	return st.Ino, nil
}
