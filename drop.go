package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/cgfreeze/cgfreeze/conns"
	"github.com/spf13/pflag"
)

// --drop-connections: once the freeze is confirmed, abort the frozen
// processes' TCP connections, so that their peers (a message broker, a gRPC
// client) see a reset at once instead of waiting for a heartbeat or a
// deadline. docs/design.md, "Dropping connections", says how and what is
// never touched.

// The values of --drop-connections: agent.DropOff, agent.DropOn,
// agent.DropRequired.
const (
	dropOff = agent.DropOff
	dropOn  = agent.DropOn
)

// dropConfig is the parsed drop flags.
type dropConfig struct {
	mode   string
	filter conns.Filter
	// The filter flags as given, for the holder's command line.
	localPorts, remotePorts, direction string
}

// dropMode is the flag.Value of --drop-connections.
type dropMode struct{ v *string }

func (m dropMode) String() string { return *m.v }
func (m dropMode) Type() string   { return "mode" }
func (m dropMode) Set(s string) error {
	switch s {
	case dropOn, agent.DropRequired, "true":
		*m.v = s
		if s == "true" {
			*m.v = dropOn
		}
	case "off", "false":
		*m.v = dropOff
	default:
		return fmt.Errorf("must be on, required or off, not %q", s)
	}
	return nil
}

// dropFlags registers the drop flags of freeze; the returned function
// checks them once parsed and returns what is wrong.
func dropFlags(fs *pflag.FlagSet, c *dropConfig) func() []string {
	fs.Var(dropMode{&c.mode}, "drop-connections", "once frozen, abort the frozen processes' established TCP connections (their peers get a reset); =required: thaw and fail (exit 11) if they cannot be")
	fs.Lookup("drop-connections").NoOptDefVal = dropOn
	local, remote, dir := &c.localPorts, &c.remotePorts, &c.direction
	fs.StringVar(local, "drop-local-port", "", "with --drop-connections: only connections whose local port is in `ports` (a list such as 80,8000-8100)")
	fs.StringVar(remote, "drop-remote-port", "", "with --drop-connections: only connections whose remote port is in `ports` (a list such as 5672,443)")
	fs.StringVar(dir, "drop-direction", "", "with --drop-connections: only connections of direction `dir`: inbound (accepted by a listener of the target) or outbound")
	return func() []string {
		var bad []string
		var err error
		if *local != "" {
			if c.filter.LocalPorts, err = conns.ParsePorts(*local); err != nil {
				bad = append(bad, "--drop-local-port: "+err.Error())
			}
		}
		if *remote != "" {
			if c.filter.RemotePorts, err = conns.ParsePorts(*remote); err != nil {
				bad = append(bad, "--drop-remote-port: "+err.Error())
			}
		}
		switch *dir {
		case "", "both":
		case string(conns.Inbound), string(conns.Outbound):
			c.filter.Direction = conns.Direction(*dir)
		default:
			bad = append(bad, fmt.Sprintf("--drop-direction must be inbound, outbound or both, not %q", *dir))
		}
		if c.mode == dropOff {
			for _, f := range []string{"drop-local-port", "drop-remote-port", "drop-direction"} {
				if fs.Changed(f) {
					bad = append(bad, "--"+f+" needs --drop-connections")
				}
			}
		}
		return bad
	}
}

// explainDrop turns a drop failure into the message users read.
func explainDrop(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, conns.ErrNotSupported):
		msg = "this kernel cannot abort sockets (it is built without CONFIG_INET_DIAG_DESTROY): nothing was dropped; the peers notice the freeze only through their own heartbeats or deadlines (" + msg + ")"
	case errors.Is(err, conns.ErrNotPermitted):
		msg = "cgfreeze lacks CAP_NET_ADMIN over the target's network namespace (kubectl debug --profile=sysadmin, or root on the node): " + msg
	}
	if errors.Is(err, agent.ErrHiddenProcesses) {
		msg += " (run cgfreeze in the target's PID namespace: kubectl debug --target)"
	}
	return strings.ReplaceAll(msg, "\n", "; ")
}
