package conns

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cgfreeze/cgfreeze/procs"
)

// Direction tells who opened a connection, as seen from the process that
// holds it.
type Direction string

// The directions.
const (
	// Inbound: a listener in the same network namespace listens on the
	// connection's local port (and address, or on any address): the peer
	// connected to the process.
	Inbound Direction = "inbound"
	// Outbound: no listener has the local port: the process connected to
	// the peer.
	Outbound Direction = "outbound"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ Low, High uint16 }

// Contains tells whether port is in the range.
func (r PortRange) Contains(port uint16) bool { return r.Low <= port && port <= r.High }

// ParsePorts parses a comma-separated list of ports and ranges, such as
// "5672" or "80,443,8000-8100".
func ParsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		l, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("port list %q: %w", s, err)
		}
		h := l
		if isRange {
			if h, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("port list %q: %w", s, err)
			}
			if h < l {
				return nil, fmt.Errorf("port list %q: range %s ends before it starts", s, part)
			}
		}
		out = append(out, PortRange{l, h})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1 to 65535)", s)
	}
	return uint16(n), nil
}

func inRanges(rs []PortRange, port uint16) bool {
	if len(rs) == 0 {
		return true
	}
	return slices.ContainsFunc(rs, func(r PortRange) bool { return r.Contains(port) })
}

// Filter narrows which connections Drop aborts. A connection must match
// every field that is set; an empty Filter matches all.
type Filter struct {
	// LocalPorts: the connection's local port is in one of the ranges.
	LocalPorts []PortRange
	// RemotePorts: the peer's port is in one of the ranges.
	RemotePorts []PortRange
	// Direction: Inbound or Outbound only; "" for both.
	Direction Direction
}

// Match tells whether the filter lets c be dropped.
func (f Filter) Match(c Connection) bool {
	return inRanges(f.LocalPorts, c.Local.Port()) && inRanges(f.RemotePorts, c.Remote.Port()) &&
		(f.Direction == "" || f.Direction == c.Direction)
}

// Connection is an established TCP connection held by a process.
type Connection struct {
	Socket
	// PID is the process that holds the socket (the first one found, when
	// several of the given processes do).
	PID int
	// Direction says whether the peer connected to the process or the
	// other way round.
	Direction Direction
}

// Options of Drop.
type Options struct {
	// ProcRoot is the proc filesystem that shows the processes, "/proc"
	// when empty. PIDs are as that proc filesystem numbers them.
	ProcRoot string
	// Filter narrows which connections are aborted.
	Filter Filter
}

// Result says what Drop did.
type Result struct {
	// Dropped are the connections aborted: each peer was sent a reset.
	Dropped []Connection
	// Shared are connections left alone because a process that is not
	// one of the given ones holds the socket too (it was inherited or
	// passed), so aborting it would break that process.
	Shared []Connection
	// Filtered is the number of connections the filter left alone.
	Filtered int
	// Gone is the number of connections closed between the dump and the
	// abort (nothing to do for them).
	Gone int
	// Hidden is the number of PIDs given as 0: processes outside the
	// caller's PID namespace (cgroup.procs lists them so), whose sockets
	// cannot be found.
	Hidden int
}

// Drop aborts the established TCP connections (IPv4 and IPv6, v4-mapped
// included) of the processes pids, in the network namespaces those
// processes are in. It is meant for processes that cannot run (frozen):
// their descriptors and sockets cannot change under it.
//
// A socket is one of theirs when its inode appears among the "socket:[N]"
// links of their <proc>/<pid>/fd; the sock_diag dump of their network
// namespace says which of those sockets are established TCP connections,
// and each is destroyed by its exact addresses and cookie. Listening
// sockets are never touched, nor sockets that a process outside pids in the
// same network namespace holds too (Result.Shared).
//
// Drop goes on past errors that concern one connection and returns them
// joined, with what it did. An error that makes every abort fail (the
// kernel cannot destroy sockets, the caller lacks CAP_NET_ADMIN) stops it
// and wraps ErrNotSupported or ErrNotPermitted.
func Drop(pids []int, opts Options) (Result, error) {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	var res Result
	var errs []error

	// The processes' sockets, and the network namespaces they are in.
	owner := map[uint64]int{} // socket inode -> the first process that has it
	nsPID := map[uint64]int{} // network namespace inode -> a process in it that has sockets
	mine := make(map[int]bool, len(pids))
	var nsOrder []uint64
	for _, pid := range pids {
		if pid == 0 {
			res.Hidden++
			continue
		}
		if mine[pid] {
			continue
		}
		mine[pid] = true
		inodes, err := SocketInodes(opts.ProcRoot, pid)
		if errors.Is(err, fs.ErrNotExist) {
			continue // exited (a frozen v2 process still dies of SIGKILL)
		}
		if err != nil {
			errs = append(errs, permission(fmt.Errorf("list the sockets of process %d: %w", pid, err)))
			continue
		}
		if len(inodes) == 0 {
			continue
		}
		ns, err := procs.Namespace(opts.ProcRoot, pid, "net")
		if errors.Is(err, procs.ErrNoProcess) {
			continue
		}
		if err != nil {
			errs = append(errs, permission(fmt.Errorf("network namespace of process %d: %w", pid, err)))
			continue
		}
		for _, ino := range inodes {
			if _, ok := owner[ino]; !ok {
				owner[ino] = pid
			}
		}
		if _, ok := nsPID[ns]; !ok {
			nsPID[ns] = pid
			nsOrder = append(nsOrder, ns)
		}
	}
	if len(owner) == 0 {
		return res, errors.Join(errs...)
	}
	shared := sharedSockets(opts.ProcRoot, mine, nsPID, owner)

	own, ownErr := ownNetns()
	for _, ns := range nsOrder {
		pid := nsPID[ns]
		nsPath := filepath.Join(opts.ProcRoot, strconv.Itoa(pid), "ns", "net")
		if ownErr == nil && ns == own {
			nsPath = "" // the caller is there already (an ephemeral container)
		}
		err := dropInNamespace(nsPath, ns, owner, shared, opts.Filter, &res)
		if err != nil {
			errs = append(errs, fmt.Errorf("network namespace %d (of process %d): %w", ns, pid, err))
			if errors.Is(err, ErrNotSupported) || errors.Is(err, ErrNotPermitted) {
				break // the same in every namespace
			}
		}
	}
	return res, errors.Join(errs...)
}

// permission marks a refused /proc read as ErrNotPermitted.
func permission(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	}
	return err
}

// sharedSockets finds which of the given sockets a process outside mine
// holds too, among the processes in the network namespaces of interest (a
// sidecar of the same pod shares its network namespace). Processes that
// cannot be read are passed over.
func sharedSockets(procRoot string, mine map[int]bool, nsPID map[uint64]int, owner map[uint64]int) map[uint64]int {
	shared := map[uint64]int{}
	all, err := processes(procRoot)
	if err != nil {
		return shared
	}
	for _, pid := range all {
		if mine[pid] {
			continue
		}
		ns, err := procs.Namespace(procRoot, pid, "net")
		if err != nil {
			continue
		}
		if _, ok := nsPID[ns]; !ok {
			continue
		}
		inodes, err := SocketInodes(procRoot, pid)
		if err != nil {
			continue
		}
		for _, ino := range inodes {
			if _, ok := owner[ino]; ok {
				if _, seen := shared[ino]; !seen {
					shared[ino] = pid
				}
			}
		}
	}
	return shared
}

// dropStates are the states dumped: established connections, and the
// listeners that tell inbound connections from outbound ones.
const dropStates = 1<<StateEstablished | 1<<StateListen

// Select returns the established connections among socks whose inode is in
// owner, with the process that holds each and its direction (from the
// listeners among socks). Listening sockets are never selected.
func Select(socks []Socket, owner map[uint64]int) []Connection {
	var out []Connection
	for _, s := range socks {
		if s.State != StateEstablished || s.Inode == 0 {
			continue
		}
		pid, ok := owner[s.Inode]
		if !ok {
			continue
		}
		c := Connection{Socket: s, PID: pid, Direction: Outbound}
		if listening(socks, s) {
			c.Direction = Inbound
		}
		out = append(out, c)
	}
	return out
}

// listening tells whether a listener has s's local port, on s's local
// address or on every address.
func listening(socks []Socket, s Socket) bool {
	for _, l := range socks {
		if l.State != StateListen || l.Local.Port() != s.Local.Port() {
			continue
		}
		la := l.Local.Addr().Unmap()
		if la.IsUnspecified() || la == s.Local.Addr().Unmap() {
			return true
		}
	}
	return false
}
