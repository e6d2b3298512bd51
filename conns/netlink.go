package conns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// The sock_diag wire format (include/uapi/linux/netlink.h, sock_diag.h,
// inet_diag.h). x/sys/unix has the constants but not the inet_diag structs;
// they are three fixed layouts, encoded here by hand rather than with a
// netlink library that would bring far more than this package uses.
// Linux's values (linux/socket.h, linux/netlink.h, linux/sock_diag.h):
// the messages are Linux's, whatever the OS this package is built for, so
// that it builds (and parses) everywhere. TestLinuxConstants checks them
// against golang.org/x/sys/unix on Linux.
const (
	// AFInet and AFInet6 are Socket.Family's values.
	AFInet  = 2
	AFInet6 = 10

	ipprotoTCP       = 6
	sockDiagByFamily = 20
	sockDestroy      = 21
	nlmFRequest      = 0x1
	nlmFAck          = 0x4
	nlmFDump         = 0x300
	nlmFDumpIntr     = 0x10
	nlmsgDone        = 0x3
	nlmsgError       = 0x2
)

const (
	nlmsgHdrLen = 16 // struct nlmsghdr
	// sockIDLen is struct inet_diag_sockid: sport, dport (big endian),
	// src[4], dst[4] (big endian words), if, cookie[2] (host order).
	sockIDLen = 48
	// reqLen is struct inet_diag_req_v2: family, protocol, ext, pad,
	// states, then the sockid.
	reqLen = 8 + sockIDLen
	// msgLen is struct inet_diag_msg: family, state, timer, retrans, the
	// sockid, then expires, rqueue, wqueue, uid, inode.
	msgLen = 4 + sockIDLen + 20
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	StateEstablished = 1
	StateListen      = 10
)

// stateNames names the TCP states, for messages.
var stateNames = map[uint8]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
	7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}

// Socket is one TCP socket as a sock_diag dump describes it.
type Socket struct {
	// Family is AFInet or AFInet6 (an AF_INET6 socket may
	// carry v4-mapped addresses).
	Family uint8
	// State is the TCP state (StateEstablished, StateListen, ...).
	State uint8
	// Local and Remote are the socket's addresses as the kernel has them.
	Local, Remote netip.AddrPort
	// Interface is the bound interface index (0 for none).
	Interface uint32
	// Cookie is the kernel's unique, never reused identifier of the socket.
	Cookie uint64
	// Inode is the inode of the socket's file ("socket:[inode]" in
	// /proc/<pid>/fd); 0 for a socket that no file refers to (one still in
	// a listener's accept queue, or one being closed).
	Inode uint64
	// UID is the socket's owner.
	UID uint32

	// id is the inet_diag_sockid exactly as dumped, sent back unchanged
	// to destroy this very socket.
	id [sockIDLen]byte
}

// StateName returns the name of the socket's TCP state.
func (s Socket) StateName() string {
	if n, ok := stateNames[s.State]; ok {
		return n
	}
	return fmt.Sprintf("state %d", s.State)
}

func (s Socket) String() string {
	return fmt.Sprintf("%s -> %s (%s, inode %d, cookie %#x)", s.Local, s.Remote, s.StateName(), s.Inode, s.Cookie)
}

// header encodes a netlink message header.
func header(b []byte, length uint32, typ, flags uint16, seq uint32) {
	binary.NativeEndian.PutUint32(b[0:], length)
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	binary.NativeEndian.PutUint32(b[12:], 0) // port ID: the kernel fills it
}

// DumpRequest encodes a SOCK_DIAG_BY_FAMILY dump request for the TCP sockets
// of one family in the given states (a bit mask of 1<<state).
func DumpRequest(seq uint32, family uint8, states uint32) []byte {
	b := make([]byte, nlmsgHdrLen+reqLen)
	header(b, uint32(len(b)), sockDiagByFamily, nlmFRequest|nlmFDump, seq)
	r := b[nlmsgHdrLen:]
	r[0], r[1] = family, ipprotoTCP
	binary.NativeEndian.PutUint32(r[4:], states)
	return b
}

// DestroyRequest encodes a SOCK_DESTROY request for exactly the socket s:
// its addresses, ports, interface and cookie as dumped. The kernel looks the
// socket up by the addresses and refuses with ESTALE when the cookie names
// another socket (the connection was closed and the 4-tuple reused, or only
// a listener is left on it), so nothing but s can be aborted.
func DestroyRequest(seq uint32, s Socket) []byte {
	b := make([]byte, nlmsgHdrLen+reqLen)
	header(b, uint32(len(b)), sockDestroy, nlmFRequest|nlmFAck, seq)
	r := b[nlmsgHdrLen:]
	r[0], r[1] = s.Family, ipprotoTCP
	binary.NativeEndian.PutUint32(r[4:], 1<<s.State)
	copy(r[8:], s.id[:])
	return b
}

// ParseSocket decodes one struct inet_diag_msg (and ignores the attributes
// that may follow it).
func ParseSocket(b []byte) (Socket, error) {
	if len(b) < msgLen {
		return Socket{}, fmt.Errorf("inet_diag_msg of %d bytes, want at least %d", len(b), msgLen)
	}
	s := Socket{Family: b[0], State: b[1]}
	copy(s.id[:], b[4:4+sockIDLen])
	id := b[4:]
	sport, dport := binary.BigEndian.Uint16(id[0:]), binary.BigEndian.Uint16(id[2:])
	switch s.Family {
	case AFInet:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[4:8])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(id[20:24])), dport)
	case AFInet6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[4:20])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(id[20:36])), dport)
	default:
		return Socket{}, fmt.Errorf("inet_diag_msg of address family %d, want AF_INET or AF_INET6", s.Family)
	}
	s.Interface = binary.NativeEndian.Uint32(id[36:])
	s.Cookie = uint64(binary.NativeEndian.Uint32(id[40:])) | uint64(binary.NativeEndian.Uint32(id[44:]))<<32
	rest := b[4+sockIDLen:]
	s.UID = binary.NativeEndian.Uint32(rest[12:])
	s.Inode = uint64(binary.NativeEndian.Uint32(rest[16:]))
	return s, nil
}

// errDumpInterrupted: the kernel's socket tables changed during a dump
// (NLM_F_DUMP_INTR), so it may have missed or repeated sockets.
var errDumpInterrupted = errors.New("the socket table changed during the dump")

// parseDump decodes the messages of one netlink read of a dump answer for
// request seq. done is true once NLMSG_DONE is seen.
func parseDump(b []byte, seq uint32) (socks []Socket, done bool, err error) {
	err = eachMessage(b, func(typ, flags uint16, mseq uint32, payload []byte) error {
		if mseq != seq {
			return nil // an answer to an earlier request that gave up
		}
		if flags&nlmFDumpIntr != 0 {
			return errDumpInterrupted
		}
		switch typ {
		case nlmsgDone:
			done = true
			if len(payload) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(payload)); e < 0 {
					return fmt.Errorf("dump: %w", syscall.Errno(-e))
				}
			}
		case nlmsgError:
			done = true
			return ackError(payload)
		case sockDiagByFamily:
			s, err := ParseSocket(payload)
			if err != nil {
				return err
			}
			socks = append(socks, s)
		}
		return nil
	})
	return socks, done, err
}

// parseAck decodes the answer to a request sent with NLM_F_ACK: nil for an
// acknowledgement, the kernel's errno otherwise. found is false when b holds
// no answer to seq.
func parseAck(b []byte, seq uint32) (found bool, err error) {
	err = eachMessage(b, func(typ, _ uint16, mseq uint32, payload []byte) error {
		if mseq != seq || typ != nlmsgError {
			return nil
		}
		found = true
		return ackError(payload)
	})
	return found, err
}

// ackError reads struct nlmsgerr: 0 is an acknowledgement, a negative
// number an errno.
func ackError(payload []byte) error {
	if len(payload) < 4 {
		return fmt.Errorf("netlink error message of %d bytes", len(payload))
	}
	if e := int32(binary.NativeEndian.Uint32(payload)); e < 0 {
		return syscall.Errno(-e)
	}
	return nil
}

// eachMessage walks the netlink messages in b.
func eachMessage(b []byte, fn func(typ, flags uint16, seq uint32, payload []byte) error) error {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return fmt.Errorf("netlink message header of %d bytes", len(b))
		}
		l := binary.NativeEndian.Uint32(b[0:])
		if l < nlmsgHdrLen || int(l) > len(b) {
			return fmt.Errorf("netlink message of length %d in %d bytes", l, len(b))
		}
		typ, flags := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint16(b[6:])
		seq := binary.NativeEndian.Uint32(b[8:])
		if err := fn(typ, flags, seq, b[nlmsgHdrLen:l]); err != nil {
			return err
		}
		next := (int(l) + 3) &^ 3 // NLMSG_ALIGN
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return nil
}
