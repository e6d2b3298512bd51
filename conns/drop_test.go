//go:build linux

package conns

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseSocketLink(t *testing.T) {
	for in, want := range map[string]uint64{"socket:[1454243]": 1454243, "socket:[0]": 0} {
		if got, ok := ParseSocketLink(in); !ok || got != want {
			t.Errorf("ParseSocketLink(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"pipe:[12]", "socket:[x]", "socket:[12", "/dev/null", "anon_inode:[eventpoll]"} {
		if _, ok := ParseSocketLink(in); ok {
			t.Errorf("ParseSocketLink(%q) is a socket", in)
		}
	}
}

// TestSocketInodes reads a fake proc tree (testdata/proc/100/fd holds real
// symlinks, as /proc does).
func TestSocketInodes(t *testing.T) {
	got, err := SocketInodes("testdata/proc", 100)
	if err != nil || !reflect.DeepEqual(got, []uint64{111, 222}) {
		t.Errorf("SocketInodes = %v, %v; want [111 222]", got, err)
	}
	if _, err := SocketInodes("testdata/proc", 101); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SocketInodes of a missing process = %v, want fs.ErrNotExist", err)
	}
}

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("5672, 8000-8100,443")
	want := []PortRange{{5672, 5672}, {8000, 8100}, {443, 443}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePorts = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "0", "65536", "http", "10-5", "1-", "-3", "5,,6"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) = nil error", bad)
		}
	}
}

func conn(local, remote string, dir Direction) Connection {
	return Connection{Socket: Socket{Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}, Direction: dir}
}

func TestFilter(t *testing.T) {
	in := conn("10.0.0.1:8080", "10.0.0.2:40000", Inbound)
	out := conn("10.0.0.1:41000", "10.0.0.3:5672", Outbound)
	for _, tt := range []struct {
		f       Filter
		in, out bool
	}{
		{Filter{}, true, true},
		{Filter{Direction: Inbound}, true, false},
		{Filter{Direction: Outbound}, false, true},
		{Filter{RemotePorts: []PortRange{{5672, 5672}}}, false, true},
		{Filter{LocalPorts: []PortRange{{8000, 8100}}}, true, false},
		{Filter{LocalPorts: []PortRange{{8000, 8100}}, Direction: Outbound}, false, false},
	} {
		if got := tt.f.Match(in); got != tt.in {
			t.Errorf("%+v matches %v: %v, want %v", tt.f, in.Socket, got, tt.in)
		}
		if got := tt.f.Match(out); got != tt.out {
			t.Errorf("%+v matches %v: %v, want %v", tt.f, out.Socket, got, tt.out)
		}
	}
}

// TestSelect runs over the captured dumps: established sockets only, the
// given inodes only, and the direction from the listeners (the v4-mapped
// connection came in through a dual-stack listener).
func TestSelect(t *testing.T) {
	var socks []Socket
	for i, f := range []string{"dump-inet", "dump-inet6"} {
		s, _, err := parseDump(readDump(t, f), uint32(i+1))
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s...)
	}
	owner := map[uint64]int{}
	for _, s := range socks {
		owner[s.Inode] = int(s.Inode % 1000) // every socket, listeners too
	}
	got := Select(socks, owner)
	if len(got) != 6 {
		t.Fatalf("Select = %d connections, want the 6 established ones: %v", len(got), got)
	}
	dirs := map[Direction]int{}
	for _, c := range got {
		if c.State != StateEstablished || c.PID != int(c.Inode%1000) {
			t.Errorf("selected %v (pid %d)", c.Socket, c.PID)
		}
		dirs[c.Direction]++
	}
	if dirs[Inbound] != 3 || dirs[Outbound] != 3 {
		t.Errorf("directions %v, want 3 inbound (accepted) and 3 outbound (dialled)", dirs)
	}
	if got := Select(socks, map[uint64]int{}); len(got) != 0 {
		t.Errorf("Select with no owned inode = %v", got)
	}
}

// inPrivateNetns runs fn on a thread in a new network namespace with lo up;
// the thread is thrown away after. Skipped unless root.
func inPrivateNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace of its own)")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := loUp(); err != nil {
			t.Errorf("lo up: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// TestDestroy aborts real connections in a private network namespace: the
// peer reads a reset at once, a listener is never matched by a connection's
// id, and a stale id (wrong cookie, or a socket already gone) aborts nothing.
func TestDestroy(t *testing.T) {
	inPrivateNetns(t, func() {
		for _, network := range []string{"tcp4", "tcp6"} {
			host := "127.0.0.1"
			if network == "tcp6" {
				host = "::1"
			}
			l, err := net.Listen(network, net.JoinHostPort(host, "0"))
			if err != nil {
				t.Errorf("listen: %v", err)
				return
			}
			defer func() { _ = l.Close() }()
			client, err := net.Dial(network, l.Addr().String())
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer func() { _ = client.Close() }()
			server, err := l.Accept()
			if err != nil {
				t.Errorf("accept: %v", err)
				return
			}
			defer func() { _ = server.Close() }()
			serverIno := inodeOf(t, server)

			d, err := Open("", 0)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			defer func() { _ = d.Close() }()
			family := uint8(unix.AF_INET)
			if network == "tcp6" {
				family = unix.AF_INET6
			}
			socks, err := d.Dump(family, dropStates)
			if err != nil {
				t.Errorf("Dump: %v", err)
				return
			}
			var target Socket
			for _, s := range socks {
				if s.Inode == serverIno {
					target = s
				}
			}
			if target.Inode == 0 {
				t.Errorf("%s: the accepted socket (inode %d) is not in the dump %v", network, serverIno, socks)
				return
			}
			stale := target
			stale.id[40] ^= 0xff // another cookie
			if err := d.Destroy(stale); !errors.Is(err, ErrGone) {
				t.Errorf("%s: Destroy with a wrong cookie = %v, want ErrGone", network, err)
			}
			start := time.Now()
			if err := d.Destroy(target); err != nil {
				t.Errorf("%s: Destroy = %v", network, err)
				return
			}
			_ = client.SetReadDeadline(time.Now().Add(time.Second))
			_, err = client.Read(make([]byte, 1))
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("%s: the peer read %v after the abort, want ECONNRESET", network, err)
			}
			t.Logf("%s: reset seen by the peer %v after the destroy", network, time.Since(start))
			if _, err := server.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNABORTED) && !errors.Is(err, io.EOF) {
				t.Errorf("%s: the owner read %v, want ECONNABORTED", network, err)
			}
			if err := d.Destroy(target); !errors.Is(err, ErrGone) {
				t.Errorf("%s: Destroy of a socket already aborted = %v, want ErrGone", network, err)
			}
			// The listener still accepts.
			c2, err := net.Dial(network, l.Addr().String())
			if err != nil {
				t.Errorf("%s: the listener does not accept after the abort: %v", network, err)
				return
			}
			_ = c2.Close()
		}
	})
}

func inodeOf(t *testing.T, c net.Conn) uint64 {
	t.Helper()
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatalf("fstat: %v %v", err, serr)
	}
	return st.Ino
}
