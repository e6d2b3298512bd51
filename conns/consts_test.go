//go:build linux

package conns

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestLinuxConstants: the netlink constants written out (so that the
// package builds off Linux) are Linux's.
func TestLinuxConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"AF_INET", AFInet, unix.AF_INET}, {"AF_INET6", AFInet6, unix.AF_INET6}, {"IPPROTO_TCP", ipprotoTCP, unix.IPPROTO_TCP},
		{"SOCK_DIAG_BY_FAMILY", sockDiagByFamily, unix.SOCK_DIAG_BY_FAMILY}, {"SOCK_DESTROY", sockDestroy, unix.SOCK_DESTROY},
		{"NLM_F_REQUEST", nlmFRequest, unix.NLM_F_REQUEST}, {"NLM_F_ACK", nlmFAck, unix.NLM_F_ACK}, {"NLM_F_DUMP", nlmFDump, unix.NLM_F_DUMP},
		{"NLM_F_DUMP_INTR", nlmFDumpIntr, unix.NLM_F_DUMP_INTR}, {"NLMSG_DONE", nlmsgDone, unix.NLMSG_DONE}, {"NLMSG_ERROR", nlmsgError, unix.NLMSG_ERROR},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d here, %d in golang.org/x/sys/unix", c.name, c.got, c.want)
		}
	}
}
