package conns

import "errors"

// Errors that Destroy (and Drop) wrap, for callers that explain them.
var (
	// ErrNotSupported: the kernel cannot destroy sockets
	// (CONFIG_INET_DIAG_DESTROY is off: SOCK_DESTROY answers EOPNOTSUPP).
	ErrNotSupported = errors.New("the kernel cannot abort sockets (built without CONFIG_INET_DIAG_DESTROY)")
	// ErrNotPermitted: the caller lacks CAP_NET_ADMIN over the socket's
	// network namespace, or may not enter that namespace.
	ErrNotPermitted = errors.New("not permitted to abort sockets (CAP_NET_ADMIN in the target's network namespace is needed)")
	// ErrGone: the socket was closed, or its addresses now belong to another
	// socket, between the dump and the destroy. Nothing was aborted.
	ErrGone = errors.New("the socket is gone")
)

// ErrNotLinux: sockets are dropped through Linux's sock_diag netlink; the
// package builds elsewhere (its types, parsing and filters), but does
// nothing there.
var ErrNotLinux = errors.New("dropping connections works on Linux only")
