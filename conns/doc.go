// Package conns finds the TCP connections of a set of processes and aborts
// them, so that each peer learns at once that the process is gone instead of
// waiting for a heartbeat or a deadline: what cgfreeze --drop-connections
// does to a frozen workload.
//
// It matches the "socket:[inode]" links of /proc/<pid>/fd against a
// sock_diag dump (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY) of the network
// namespace the processes are in, and destroys each established socket
// found with SOCK_DESTROY, naming it by its exact addresses and the cookie
// of the dump. The kernel then sends the peer a reset, and the owner's next
// call on the socket fails with ECONNABORTED. Listening sockets are never
// destroyed, nor a socket that a process outside the set holds too.
//
// Use:
//
//	res, err := conns.Drop(pids, conns.Options{})
//
// or, piece by piece: SocketInodes reads a process's sockets, Open creates a
// sock_diag socket in a network namespace (entering it on a locked thread
// that is thrown away), Diag.Dump lists sockets, Select matches them, and
// Diag.Destroy aborts one. The wire format is encoded and decoded by
// DumpRequest, DestroyRequest and ParseSocket, which do no I/O.
//
// The kernel needs CONFIG_INET_DIAG and CONFIG_INET_DIAG_DESTROY (without
// the latter SOCK_DESTROY answers EOPNOTSUPP: ErrNotSupported), and the
// caller CAP_NET_ADMIN over the sockets' network namespace (else EPERM:
// ErrNotPermitted); entering another network namespace takes CAP_SYS_ADMIN.
package conns
