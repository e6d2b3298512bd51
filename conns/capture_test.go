//go:build linux

package conns

import (
	"flag"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

var capture = flag.Bool("capture", false, "as root: rewrite testdata/dump-* from a real dump in a fresh network namespace")

// TestCapture makes the dumps that the parser tests read: in a network
// namespace of its own (so it sees no socket of this machine's), it opens
// IPv4, IPv6 and v4-mapped connections and listeners, then saves the
// kernel's raw answers to dump requests and what ss(8) says of the same
// sockets at the same moment, which the parser tests compare with.
// Run it by hand: go test ./conns -run TestCapture -capture (as root).
func TestCapture(t *testing.T) {
	if !*capture {
		t.Skip("only with -capture")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fatal := func(format string, args ...any) {
			t.Errorf(format, args...)
			runtime.Goexit()
		}
		// The thread leaves this process's network namespace and is
		// never given back (see InNetns).
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			fatal("unshare: %v", err)
		}
		if err := loUp(); err != nil {
			fatal("lo up: %v", err)
		}
		var keep []any
		listen := func(network, addr string) net.Listener {
			l, err := net.Listen(network, addr)
			if err != nil {
				fatal("listen %s %s: %v", network, addr, err)
			}
			keep = append(keep, l)
			return l
		}
		dial := func(network string, l net.Listener, host string) {
			_, port, _ := net.SplitHostPort(l.Addr().String())
			c, err := net.Dial(network, net.JoinHostPort(host, port))
			if err != nil {
				fatal("dial %s: %v", host, err)
			}
			a, err := l.Accept()
			if err != nil {
				fatal("%v", err)
			}
			keep = append(keep, c, a)
		}
		l4 := listen("tcp4", "127.0.0.1:0")
		l6 := listen("tcp6", "[::1]:0")
		dual := listen("tcp", "[::]:0") // accepts IPv4 as v4-mapped IPv6
		dial("tcp4", l4, "127.0.0.1")
		dial("tcp6", l6, "::1")
		dial("tcp4", dual, "127.0.0.1")

		d, err := Open("", 0)
		if err != nil {
			fatal("%v", err)
		}
		defer func() { _ = d.Close() }()
		for _, f := range []struct {
			family uint8
			name   string
		}{{unix.AF_INET, "dump-inet"}, {unix.AF_INET6, "dump-inet6"}} {
			d.seq++
			if err := d.send(DumpRequest(d.seq, f.family, dropStates)); err != nil {
				fatal("%v", err)
			}
			var raw []byte
			for {
				b, err := d.recv()
				if err != nil {
					fatal("%v", err)
				}
				raw = append(raw, b...)
				_, done, err := parseDump(b, d.seq)
				if err != nil {
					fatal("%v", err)
				}
				if done {
					break
				}
			}
			if err := os.WriteFile(filepath.Join("testdata", f.name), raw, 0o644); err != nil {
				fatal("%v", err)
			}
		}
		// ss forks on this thread: it runs in the same namespace.
		out, err := exec.Command("ss", "-tanie").CombinedOutput()
		if err != nil {
			fatal("ss: %v: %s", err, out)
		}
		if err := os.WriteFile(filepath.Join("testdata", "dump-ss.txt"), out, 0o644); err != nil {
			fatal("%v", err)
		}
		_ = keep
	}()
	<-done
}

// loUp brings the loopback interface of the thread's network namespace up.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
