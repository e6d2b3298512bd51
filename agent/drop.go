package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/conns"
	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/rs/zerolog"
)

// Modes of DropConfig: whether, once frozen, the frozen processes' TCP
// connections are aborted (docs/design.md, "Dropping connections").
const (
	DropOff      = ""
	DropOn       = "on"       // best effort: a failure is reported, the freeze holds
	DropRequired = "required" // no freeze without the drop: a failure thaws and fails with ErrDropFailed
)

// ErrDropFailed: DropRequired, and the connections could not all be
// dropped; the target was thawed.
var ErrDropFailed = errors.New("connections not dropped")

// ErrHiddenProcesses: processes of the target are outside this PID
// namespace, so their connections cannot be found.
var ErrHiddenProcesses = errors.New("processes of the target are outside this PID namespace")

// DropConfig says what to drop once frozen.
type DropConfig struct {
	Mode     string
	Filter   conns.Filter
	ProcRoot string
	// Explain turns a drop failure into the warning of the event (the
	// command adds what to do); nil: the error's text.
	Explain func(error) string
}

func (d DropConfig) explain(err error) string {
	msg := err.Error()
	if d.Explain != nil {
		msg = d.Explain(err)
	}
	return strings.ReplaceAll(msg, "\n", "; ")
}

// ConnectionsOf converts connections for an event.
func ConnectionsOf(cs []conns.Connection) []contract.Connection {
	out := make([]contract.Connection, 0, len(cs))
	for _, c := range cs {
		out = append(out, contract.Connection{Local: c.Local.String(), Remote: c.Remote.String(), PID: c.PID, Direction: string(c.Direction)})
	}
	return out
}

// dropConnections aborts the frozen processes' connections and emits the
// connections_dropped event. It returns an error (wrapping ErrDropFailed)
// only with DropRequired, when the connections could not all be dropped;
// otherwise a failure is a warning and the freeze holds.
func dropConnections(d DropConfig, ev *Writer, log zerolog.Logger, t *freezer.Target) error {
	start := time.Now()
	pids, hidden, err := t.Processes()
	var res conns.Result
	if err == nil {
		res, err = conns.Drop(pids, conns.Options{ProcRoot: d.ProcRoot, Filter: d.Filter})
	} else {
		err = fmt.Errorf("list the frozen processes: %w", err)
	}
	res.Hidden += hidden
	if res.Hidden > 0 {
		err = errors.Join(err, fmt.Errorf("%w: %d of them (cgroup.procs lists them as 0), so their connections cannot be found", ErrHiddenProcesses, res.Hidden))
	}
	e := Base(t)
	e.Event, e.ElapsedMS = contract.EventConnectionsDropped, MS(time.Since(start))
	count := len(res.Dropped)
	e.Count, e.Filtered, e.Hidden = &count, res.Filtered, res.Hidden
	dropped := ConnectionsOf(res.Dropped)
	e.Connections = &dropped
	if len(res.Shared) > 0 {
		e.Shared = ConnectionsOf(res.Shared)
		log.Warn().Int("count", len(res.Shared)).Msg("left connections alone that a process outside the freeze holds too")
	}
	if err != nil {
		e.Warning = d.explain(err)
	}
	ev.Emit(e)
	if err == nil {
		log.Info().Int("count", count).Msg("connections dropped")
		return nil
	}
	if d.Mode == DropRequired {
		return fmt.Errorf("%w (the drop is required; %d dropped): %s", ErrDropFailed, count, e.Warning)
	}
	log.Warn().Int("count", count).Msg("connections not dropped, the target stays frozen: " + e.Warning)
	return nil
}

// Base returns an event with the fields that every event about the target
// carries.
func Base(t *freezer.Target) contract.Event {
	return contract.Event{PID: t.PID, Cgroup: t.Path, Version: t.Version, Strategy: string(t.Strategy), ContainerID: t.ContainerID}
}

// thawWithin thaws with its own deadline; a failed thaw abandons the
// target (the lock is released for the watchdog) and says what is left.
func thawWithin(timeout time.Duration, t *freezer.Target, frozen *freezer.Frozen) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := frozen.Thaw(ctx); err != nil {
		frozen.Abandon()
		if st, serr := freezer.Inspect(t); serr == nil {
			err = fmt.Errorf("%w; left: the target is %s with %d processes", err, st.State, st.Processes)
		}
		return err
	}
	return nil
}
