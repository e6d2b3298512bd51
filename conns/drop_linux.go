//go:build linux

package conns

import (
	"errors"
	"fmt"

	"github.com/cgfreeze/cgfreeze/internal/faults"

	"golang.org/x/sys/unix"
)

func dropInNamespace(nsPath string, nsIno uint64, owner, shared map[uint64]int, filter Filter, res *Result) error {
	d, err := Open(nsPath, nsIno)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	var socks []Socket
	for _, family := range []uint8{AFInet, AFInet6} {
		s, err := d.Dump(family, dropStates)
		if err != nil {
			return err
		}
		socks = append(socks, s...)
	}
	conns := Select(socks, owner)
	var errs []error
	for _, c := range conns {
		if !filter.Match(c) {
			res.Filtered++
			continue
		}
		if _, ok := shared[c.Inode]; ok {
			res.Shared = append(res.Shared, c)
			continue
		}
		err := faults.Point("drop:destroy")
		if errors.Is(err, unix.EOPNOTSUPP) {
			// A fault that plays a kernel without CONFIG_INET_DIAG_DESTROY.
			err = fmt.Errorf("abort %s: %w (%w)", c.Socket, ErrNotSupported, err)
		}
		if err == nil {
			err = d.Destroy(c.Socket)
		}
		switch {
		case err == nil:
			res.Dropped = append(res.Dropped, c)
		case errors.Is(err, ErrGone):
			res.Gone++
		case errors.Is(err, ErrNotSupported), errors.Is(err, ErrNotPermitted):
			return err
		default:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
