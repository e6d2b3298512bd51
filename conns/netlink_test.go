//go:build linux

package conns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ssSocket is what ss -tanie printed of one socket (testdata/dump-ss.txt,
// captured together with the dumps by TestCapture).
type ssSocket struct {
	state         string
	local, remote string
	cookie        uint64
}

func readSS(t *testing.T) map[uint64]ssSocket {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dump-ss.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]ssSocket{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || (f[0] != "LISTEN" && f[0] != "ESTAB") {
			continue
		}
		s := ssSocket{state: f[0], local: f[3], remote: f[4]}
		var ino uint64
		for _, x := range f[5:] {
			if v, ok := strings.CutPrefix(x, "ino:"); ok {
				ino, _ = strconv.ParseUint(v, 10, 64)
			}
			if v, ok := strings.CutPrefix(x, "sk:"); ok {
				s.cookie, _ = strconv.ParseUint(v, 16, 64)
			}
		}
		out[ino] = s
	}
	return out
}

// ssAddr prints an address the way ss does.
func ssAddr(ap netip.AddrPort, family uint8) string {
	a, port := ap.Addr(), strconv.Itoa(int(ap.Port()))
	if ap.Port() == 0 {
		port = "*"
	}
	switch {
	case a.IsUnspecified() && family == unix.AF_INET6 && ap.Port() != 0:
		return "*:" + port
	case a.IsUnspecified() && family == unix.AF_INET6:
		return "[::]:" + port
	case a.Is6():
		return "[" + a.String() + "]:" + port
	}
	return a.String() + ":" + port
}

func readDump(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseDump decodes real dumps (IPv4; IPv6 with a v4-mapped
// connection to a dual-stack listener) and compares every socket with what
// ss printed of it at the same moment.
func TestParseDump(t *testing.T) {
	ss := readSS(t)
	seen := 0
	for _, tt := range []struct {
		file   string
		family uint8
		want   int // sockets in the dump
	}{{"dump-inet", unix.AF_INET, 4}, {"dump-inet6", unix.AF_INET6, 5}} {
		// The capture's dumps were the first and second request.
		seq := uint32(1)
		if tt.family == unix.AF_INET6 {
			seq = 2
		}
		socks, done, err := parseDump(readDump(t, tt.file), seq)
		if err != nil || !done {
			t.Fatalf("%s: parseDump = done %v, %v", tt.file, done, err)
		}
		if len(socks) != tt.want {
			t.Errorf("%s: %d sockets, want %d: %v", tt.file, len(socks), tt.want, socks)
		}
		for _, s := range socks {
			seen++
			want, ok := ss[s.Inode]
			if !ok {
				t.Errorf("%s: socket %v: ss shows no inode %d", tt.file, s, s.Inode)
				continue
			}
			state := map[uint8]string{StateEstablished: "ESTAB", StateListen: "LISTEN"}[s.State]
			got := ssSocket{state: state, local: ssAddr(s.Local, s.Family), remote: ssAddr(s.Remote, s.Family), cookie: s.Cookie}
			if want.remote == "*:*" {
				// ss prints a dual-stack (not v6only) listener's peer so.
				want.remote = "[::]:*"
			}
			if s.Family != tt.family || got != want {
				t.Errorf("%s: inode %d decoded as %+v (family %d), ss says %+v", tt.file, s.Inode, got, s.Family, want)
			}
		}
	}
	if seen != len(ss) {
		t.Errorf("decoded %d sockets, ss shows %d", seen, len(ss))
	}
	// A dump answer to another request is not this one's.
	if socks, done, err := parseDump(readDump(t, "dump-inet"), 7); len(socks) != 0 || done || err != nil {
		t.Errorf("parseDump of another sequence = %v, %v, %v; want nothing", socks, done, err)
	}
}

func TestV4Mapped(t *testing.T) {
	socks, _, err := parseDump(readDump(t, "dump-inet6"), 2)
	if err != nil {
		t.Fatal(err)
	}
	mapped := 0
	for _, s := range socks {
		if s.State == StateEstablished && s.Local.Addr().Is4In6() {
			mapped++
			if s.Local.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("v4-mapped socket %v: local address %v", s, s.Local.Addr())
			}
		}
	}
	if mapped != 1 {
		t.Errorf("%d v4-mapped connections in the IPv6 dump, want 1", mapped)
	}
}

func TestDumpRequest(t *testing.T) {
	b := DumpRequest(9, unix.AF_INET6, dropStates)
	want := make([]byte, 72)
	binary.NativeEndian.PutUint32(want[0:], 72)
	binary.NativeEndian.PutUint16(want[4:], 20)     // SOCK_DIAG_BY_FAMILY
	binary.NativeEndian.PutUint16(want[6:], 0x301)  // NLM_F_REQUEST|NLM_F_DUMP
	binary.NativeEndian.PutUint32(want[8:], 9)      // seq
	want[16], want[17] = 10, 6                      // AF_INET6, IPPROTO_TCP
	binary.NativeEndian.PutUint32(want[20:], 0x402) // ESTABLISHED, LISTEN
	if !bytes.Equal(b, want) {
		t.Errorf("DumpRequest =\n%x\nwant\n%x", b, want)
	}
}

// TestDestroyRequest: the destroy names the socket by exactly the id the
// kernel dumped: ports, addresses, interface and cookie.
func TestDestroyRequest(t *testing.T) {
	socks, _, err := parseDump(readDump(t, "dump-inet6"), 2)
	if err != nil {
		t.Fatal(err)
	}
	raw := readDump(t, "dump-inet6")
	for _, s := range socks {
		b := DestroyRequest(3, s)
		if len(b) != 72 || binary.NativeEndian.Uint32(b) != 72 {
			t.Fatalf("DestroyRequest is %d bytes", len(b))
		}
		if typ, flags := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint16(b[6:]); typ != 21 || flags != 0x5 {
			t.Errorf("type %d flags %#x, want SOCK_DESTROY (21), NLM_F_REQUEST|NLM_F_ACK", typ, flags)
		}
		if b[16] != s.Family || b[17] != unix.IPPROTO_TCP {
			t.Errorf("family %d protocol %d", b[16], b[17])
		}
		id := b[24:]
		if !bytes.Contains(raw, id) {
			t.Errorf("the id of %v is not the dumped one: %x", s, id)
		}
		if got := uint64(binary.NativeEndian.Uint32(id[40:])) | uint64(binary.NativeEndian.Uint32(id[44:]))<<32; got != s.Cookie {
			t.Errorf("cookie %#x in the request, %#x dumped", got, s.Cookie)
		}
	}
}

func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	l := nlmsgHdrLen + len(payload)
	b := make([]byte, (l+3)&^3)
	header(b, uint32(l), typ, flags, seq)
	copy(b[nlmsgHdrLen:], payload)
	return b
}

func errPayload(errno int32) []byte {
	b := make([]byte, 4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b, uint32(errno))
	return b
}

func TestParseDumpErrors(t *testing.T) {
	done0 := make([]byte, 4)
	for _, tt := range []struct {
		name string
		in   []byte
		want error
		done bool
	}{
		{"done", nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, done0), nil, true},
		{"error", nlmsg(unix.NLMSG_ERROR, 0, 1, errPayload(-int32(unix.EPERM))), syscall.EPERM, true},
		{"done with an error", nlmsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, errPayload(-int32(unix.ENOBUFS))[:4]), syscall.ENOBUFS, true},
		{"interrupted", nlmsg(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR, 1, make([]byte, msgLen)), errDumpInterrupted, false},
	} {
		_, done, err := parseDump(tt.in, 1)
		if done != tt.done || (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: parseDump = done %v, %v; want done %v, %v", tt.name, done, err, tt.done, tt.want)
		}
	}
	for _, bad := range [][]byte{
		{1, 2, 3}, // shorter than a header
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, 0, 1, make([]byte, 10)),     // short inet_diag_msg
		append(nlmsg(unix.NLMSG_DONE, 0, 1, done0)[:8], 0, 0, 0, 0), // length past the end
	} {
		if _, _, err := parseDump(bad, 1); err == nil {
			t.Errorf("parseDump(%x) = nil error", bad)
		}
	}
	msg := make([]byte, msgLen)
	msg[0] = 1 // AF_UNIX
	if _, err := ParseSocket(msg); err == nil {
		t.Errorf("ParseSocket of an AF_UNIX socket: no error")
	}
}

func TestParseAck(t *testing.T) {
	if found, err := parseAck(nlmsg(unix.NLMSG_ERROR, 0, 4, errPayload(0)), 4); !found || err != nil {
		t.Errorf("ack = %v, %v", found, err)
	}
	if found, err := parseAck(nlmsg(unix.NLMSG_ERROR, 0, 4, errPayload(-int32(unix.EOPNOTSUPP))), 4); !found || !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("EOPNOTSUPP = %v, %v", found, err)
	}
	if found, err := parseAck(nlmsg(unix.NLMSG_ERROR, 0, 3, errPayload(0)), 4); found || err != nil {
		t.Errorf("an answer to another request = %v, %v", found, err)
	}
}
