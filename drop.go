package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/conns"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
)

// --drop-connections: once the freeze is confirmed, abort the frozen
// processes' TCP connections, so that their peers (a message broker, a gRPC
// client) see a reset at once instead of waiting for a heartbeat or a
// deadline. docs/design.md, "Dropping connections", says how and what is
// never touched.

// The values of --drop-connections.
const (
	dropOff      = ""
	dropOn       = "on"       // best effort: a failure is reported, the freeze holds
	dropRequired = "required" // no freeze without the drop: a failure thaws and exits exitDropFailed
)

// errDropFailed: --drop-connections=required and the connections could not
// all be dropped; the target was thawed.
var errDropFailed = errors.New("connections not dropped")

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
	case dropOn, dropRequired, "true":
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

// connection is one entry of the connections_dropped event.
type connection struct {
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	PID       int    `json:"pid"`
	Direction string `json:"direction"`
}

func connectionsOf(cs []conns.Connection) []connection {
	out := make([]connection, 0, len(cs))
	for _, c := range cs {
		out = append(out, connection{Local: c.Local.String(), Remote: c.Remote.String(), PID: c.PID, Direction: string(c.Direction)})
	}
	return out
}

// dropConnections aborts the frozen processes' connections and emits the
// connections_dropped event. It returns an error (wrapping errDropFailed)
// only with --drop-connections=required, when the connections could not all
// be dropped; otherwise a failure is a warning and the freeze holds.
func dropConnections(c config, ev *emitter, log zerolog.Logger, t *freezer.Target) error {
	start := time.Now()
	pids, hidden, err := t.Processes()
	var res conns.Result
	if err == nil {
		res, err = conns.Drop(pids, conns.Options{ProcRoot: c.procRoot, Filter: c.drop.filter})
	} else {
		err = fmt.Errorf("list the frozen processes: %w", err)
	}
	res.Hidden += hidden
	if res.Hidden > 0 {
		err = errors.Join(err, fmt.Errorf("%d processes of the target are outside cgfreeze's PID namespace (cgroup.procs lists them as 0), so their connections cannot be found: run cgfreeze in the target's PID namespace (kubectl debug --target)", res.Hidden))
	}
	e := base(t)
	e.Event, e.ElapsedMS = "connections_dropped", ms(time.Since(start))
	count := len(res.Dropped)
	e.Count, e.Filtered, e.Hidden = &count, res.Filtered, res.Hidden
	dropped := connectionsOf(res.Dropped)
	e.Connections = &dropped
	if len(res.Shared) > 0 {
		e.Shared = connectionsOf(res.Shared)
		log.Warn().Int("count", len(res.Shared)).Msg("left connections alone that a process outside the freeze holds too")
	}
	if err != nil {
		e.Warning = explainDrop(err)
	}
	ev.emit(e)
	if err == nil {
		log.Info().Int("count", count).Msg("connections dropped")
		return nil
	}
	if c.drop.mode == dropRequired {
		return fmt.Errorf("%w (--drop-connections=required, %d dropped): %s", errDropFailed, count, e.Warning)
	}
	log.Warn().Int("count", count).Msg("connections not dropped, the target stays frozen: " + e.Warning)
	return nil
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
	return strings.ReplaceAll(msg, "\n", "; ")
}

// thawAfterDropFailure undoes the freeze when --drop-connections=required
// could not drop, and returns the exit code.
func thawAfterDropFailure(c config, ev *emitter, log zerolog.Logger, frozen *freezer.Frozen, dropErr error) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := frozen.Thaw(ctx); err != nil {
		frozen.Abandon()
		return fail(ev, log, fmt.Errorf("%w; and then: %w", dropErr, err))
	}
	return fail(ev, log, dropErr)
}

// connectionsText prints connections for the text events:
// "local->remote/pid,..." (no spaces, so that the value needs no quotes).
func connectionsText(cs []connection) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s->%s/%d", c.Local, c.Remote, c.PID))
	}
	return strings.Join(parts, ",")
}
