//go:build !linux

package conns

// Off Linux there is no sock_diag: what reaches the kernel fails with
// ErrNotLinux, the rest of the package (ports, filters, parsing) works.

// Diag is a sock_diag netlink socket (Linux only).
type Diag struct{}

// Open fails with ErrNotLinux off Linux.
func Open(nsPath string, wantIno uint64) (*Diag, error) { return nil, ErrNotLinux }

// Close does nothing off Linux.
func (d *Diag) Close() error { return nil }

// Dump fails with ErrNotLinux off Linux.
func (d *Diag) Dump(family uint8, states uint32) ([]Socket, error) { return nil, ErrNotLinux }

// Destroy fails with ErrNotLinux off Linux.
func (d *Diag) Destroy(s Socket) error { return ErrNotLinux }

// InNetns fails with ErrNotLinux off Linux.
func InNetns(nsPath string, wantIno uint64, fn func() error) error { return ErrNotLinux }

func dropInNamespace(nsPath string, nsIno uint64, owner, shared map[uint64]int, filter Filter, res *Result) error {
	return ErrNotLinux
}

func ownNetns() (uint64, error) { return 0, ErrNotLinux }
