package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/rs/zerolog"
)

// The entry points of the process protocol (package agent, and
// docs/design.md "The watchdog"): `cgfreeze freeze` is the supervisor, the
// first process; it starts `cgfreeze __hold`, its own binary, as the
// holder, which freezes, holds and thaws. They talk over the channel that
// agent.StartHolder sets up (descriptor agent.ChannelFD).

const holdCommand = "__hold"

// holderArgs is the command line of the holder: the supervisor's flags,
// with the target as the supervisor resolved it. --lease parent stays with
// the supervisor, which watches its own parent and tells the holder.
func holderArgs(c config) []string {
	args := []string{holdCommand,
		"--pid=" + strconv.Itoa(c.pid), "--cgroup-version=" + strconv.Itoa(c.cgVersion),
		"--duration=" + c.duration.String(), "--timeout=" + c.timeout.String(),
		"--output=" + c.output, "--log-level=" + c.logLevel, "--log-format=" + c.logFormat,
		"--proc=" + c.procRoot, "--sys-cgroup=" + c.sysCgroup, "--cgroup-mount=" + c.cgMount}
	var leases []string
	for _, l := range c.leases {
		if l != agent.LeaseParent {
			leases = append(leases, l)
		}
	}
	if len(leases) > 0 {
		args = append(args, "--lease="+strings.Join(leases, ","))
	}
	args = append(args, gateArgs(c.gate)...)
	if d := c.drop; d.mode != agent.DropOff {
		args = append(args, "--drop-connections="+d.mode, "--drop-local-port="+d.localPorts,
			"--drop-remote-port="+d.remotePorts, "--drop-direction="+d.direction)
	}
	return args
}

// startHolder starts the holder, before or after the supervisor resolved
// the target: it resolves the target too, and waits for the supervisor's
// word before it changes anything. Started early (a freeze of a PID, given
// or the default, where both resolve the same process; not --container-id,
// whose selection only the supervisor makes), the holder's start and
// resolution, some 4 ms, run beside the supervisor's.
func startHolder(c config, stdin io.Reader, stdout, stderr io.Writer) (*agent.HolderProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find cgfreeze's own binary to start the holder: %w", err)
	}
	var parent *os.File
	for _, l := range c.leases {
		if l == agent.LeaseParent {
			if parent, err = agent.OpenParent(); err != nil {
				if errors.Is(err, agent.ErrParentInvisible) {
					return nil, fmt.Errorf("--lease parent: %w: use --lease stdin", err)
				}
				return nil, fmt.Errorf("--lease parent: %w", err)
			}
		}
	}
	file := func(x any) *os.File {
		f, _ := x.(*os.File)
		return f
	}
	h, err := agent.StartHolder(exe, holderArgs(c), file(stdin), file(stdout), file(stderr), parent)
	if err != nil && parent != nil {
		_ = parent.Close()
	}
	return h, err
}

// supervise runs a freeze: it starts the holder (unless it started early)
// and, on the fast path, freezes the target itself and hands the hold over
// (agent.FreezeFirst); on the slow path (the start gate or heartbeats of
// --lease stdin, where the caller's first word comes before the freeze and
// a network round trip dominates anyway) it tells the holder to go on and
// freeze. Then it guards the holder.
func supervise(c config, ev *agent.Writer, log zerolog.Logger, t *freezer.Target, sigs <-chan os.Signal, h *agent.HolderProcess, stdin io.Reader, stdout, stderr io.Writer) int {
	slow := c.gate.startTimeout > 0 || c.gate.heartbeat > 0
	if slow {
		// Injected faults are then the holder's: the supervisor is
		// what must survive them. The holder inherits the environment.
		faults.Disable()
	}
	if h == nil {
		var err error
		if h, err = startHolder(c, stdin, stdout, stderr); err != nil {
			return fail(ev, log, err)
		}
	}
	if !slow {
		faults.First()
		code, err := agent.FreezeFirst(h, t, c.timeout, ev, log, sigs)
		if err != nil {
			return fail(ev, log, err)
		}
		return code
	}
	if err := h.Proceed(t); err != nil {
		log.Warn().Err(err).Msg("telling the holder to go on")
	}
	code, err := agent.Supervise(h, t, c.timeout, ev, log, sigs)
	if err != nil {
		return fail(ev, log, err)
	}
	return code
}

// holderOptions are the options of the holder's resolution: the process
// and the cgroup that its supervisor resolved (the intent), with no
// selection and no workload check of its own.
func holderOptions(c config, in agent.Intent) freezer.Options {
	o := resolveOptions(c)
	o.PID, o.PIDDefaulted, o.ContainerID = in.PID, false, ""
	return o
}

// resolveIntent resolves the target of the supervisor's intent, and
// refuses another cgroup than the supervisor's.
func resolveIntent(c config, in agent.Intent) (*freezer.Target, error) {
	t, err := freezer.Resolve(holderOptions(c, in))
	if err != nil {
		return nil, err
	}
	if t.Path != in.Path {
		_ = t.Close()
		return nil, fmt.Errorf("the target's cgroup changed while it was resolved: %s for the supervisor, %s for the holder; try again", in.Path, t.Path)
	}
	return t, nil
}

// runHolder is `cgfreeze __hold`, the holder: it waits for its
// supervisor's word. On the fast path ("freeze") it guards the
// supervisor's freeze and takes the hold over (runAdopted); on the slow
// path ("go") it resolves the target, then freezes, holds and thaws
// (agent.Hold).
func runHolder(c config, ev *agent.Writer, log zerolog.Logger, sigs <-chan os.Signal, stdin io.Reader) (code int) {
	link, err := agent.OpenLink(log)
	if err != nil {
		return fail(ev, log, fmt.Errorf("%w: the holder runs only as the child of a freezing cgfreeze", err))
	}
	// The caller of runHolder catches the signals already.
	link.Ready()
	word, err := link.AwaitWord()
	if err != nil {
		// The supervisor gave up (and says why) or died, before anything
		// changed: end without a word.
		if errors.Is(err, agent.ErrSupervisorGone) {
			return agent.ExitCode(err)
		}
		return exitOK
	}
	if word.Kind == agent.MsgFreeze {
		return runAdopted(c, ev, log, sigs, stdin, link, word.Intent, word.Files)
	}
	defer finish(link, log, &code)
	target, err := resolveIntent(c, word.Intent)
	if err != nil {
		return fail(ev, log, err)
	}
	defer closeTarget(target, log)
	cfg, stop := holderConfig(c, ev, log, stdin)
	defer stop()
	code, err = agent.Hold(cfg, target, link, sigs)
	if err != nil {
		return fail(ev, log, err)
	}
	return code
}

// runAdopted is the holder on the fast path, after the supervisor's
// intent: the guard of the supervisor's freeze until the hand-over, then
// the holder of the freeze it adopts.
func runAdopted(c config, ev *agent.Writer, log zerolog.Logger, sigs <-chan os.Signal, stdin io.Reader, link *agent.Link, in agent.Intent, files []*os.File) (code int) {
	if err := faults.Point("holder:intent"); err != nil {
		log.Warn().Err(err).Msg("fault injected after the intent")
	}
	// The holder reaches the target through the supervisor's mount,
	// passed with the intent: it does not resolve it again, and does not
	// depend on the process it was resolved from, which may die meanwhile
	// (a frozen v2 process still dies of SIGKILL).
	t, err := freezer.Open(in.Handle, c.procRoot, files)
	for _, f := range files {
		_ = f.Close()
	}
	if err != nil {
		// No guard without the target: end without "done", before
		// anything is handed over; the supervisor rolls its freeze
		// back (agent.FreezeFirst).
		link.Leave()
		return fail(ev, log, fmt.Errorf("reach the target the supervisor resolved: %w", err))
	}
	defer closeTarget(t, log)
	handover, lock, err := link.AwaitHandover()
	switch {
	case errors.Is(err, agent.ErrAborted):
		// The supervisor rolled its freeze back and says why.
		return exitOK
	case errors.Is(err, agent.ErrSupervisorGone):
		// The supervisor died during its freeze, or before the
		// hand-over: the guard recovers the target. Faults are the
		// freezing role's: the guard must survive them.
		faults.Disable()
		log.Warn().Err(err).Msg("recovering the target")
		if rerr := agent.RecoverIntent(t, c.timeout, ev); rerr != nil {
			return fail(ev, log, fmt.Errorf("%w; and the recovery failed: %w", err, rerr))
		}
		return agent.ExitCode(err)
	case err != nil:
		// No lock came: leave the target to the supervisor, which
		// guards it and recovers it when this process ends without
		// "done".
		link.Leave()
		return fail(ev, log, err)
	}
	if err := faults.Point("holder:adopt"); err != nil {
		log.Warn().Err(err).Msg("fault injected before the adoption")
	}
	frozen, err := freezer.Adopt(t, lock, handover.Processes)
	if err != nil {
		link.Leave()
		return fail(ev, log, fmt.Errorf("take the hold over: %w", err))
	}
	defer finish(link, log, &code)
	cfg, stop := holderConfig(c, ev, log, stdin)
	defer stop()
	code, err = agent.HoldAdopted(cfg, frozen, time.Unix(0, handover.FrozenAt), link, sigs)
	if err != nil {
		return fail(ev, log, err)
	}
	return code
}

// finish tells the supervisor how the holder ends (link.Finish: "done"
// once the target is known to be thawed).
func finish(link *agent.Link, log zerolog.Logger, code *int) {
	link.Finish(*code)
	// A holder killed after its "done" (the tests' step "holder:done")
	// leaves a thawed target: the supervisor ends with the code it
	// announced.
	if err := faults.Point("holder:done"); err != nil {
		log.Warn().Err(err).Msg("fault injected after the done message")
	}
}

func closeTarget(t *freezer.Target, log zerolog.Logger) {
	if err := t.Close(); err != nil {
		log.Warn().Err(err).Msg("releasing the cgroup mount")
	}
}

// holderConfig is the hold's configuration from the flags; stop ends what
// it started (the terminal's resize watch).
func holderConfig(c config, ev *agent.Writer, log zerolog.Logger, stdin io.Reader) (agent.HolderConfig, func()) {
	cfg := agent.HolderConfig{Duration: c.duration, Timeout: c.timeout, Log: log, Events: ev,
		StartTimeout: c.gate.startTimeout, Heartbeat: c.gate.heartbeat,
		Drop: agent.DropConfig{Mode: c.drop.mode, Filter: c.drop.filter, ProcRoot: c.procRoot, Explain: explainDrop}}
	for _, l := range c.leases {
		if l == agent.LeaseStdin {
			cfg.Stdin = stdin
		}
	}
	if !ev.HasView() {
		return cfg, func() {}
	}
	// Enter and a resize (kubectl attach with a TTY sends one) paint the
	// terminal view again.
	if f, ok := stdin.(*os.File); ok && agent.IsTerminal(f) {
		cfg.Terminal = stdin
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		for range winch {
			ev.Resize()
		}
	}()
	return cfg, func() { signal.Stop(winch) }
}
