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

// supervise runs a freeze: it starts the holder (unless it started early),
// tells it to go on, and watches it.
func supervise(c config, ev *agent.Writer, log zerolog.Logger, t *freezer.Target, sigs <-chan os.Signal, h *agent.HolderProcess, stdin io.Reader, stdout, stderr io.Writer) int {
	// Injected faults are the holder's: the supervisor is what must
	// survive them. The holder inherits the environment.
	faults.Disable()
	if h == nil {
		var err error
		if h, err = startHolder(c, stdin, stdout, stderr); err != nil {
			return fail(ev, log, err)
		}
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

// runHolder is `cgfreeze __hold`, the holder: it resolves the target, waits
// for its supervisor's word, then freezes, holds and thaws (agent.Hold).
func runHolder(c config, ev *agent.Writer, log zerolog.Logger, sigs <-chan os.Signal, stdin io.Reader) (code int) {
	link, err := agent.OpenLink(log)
	if err != nil {
		return fail(ev, log, fmt.Errorf("%w: the holder runs only as the child of a freezing cgfreeze", err))
	}
	target, rerr := freezer.Resolve(resolveOptions(c))
	path, err := link.AwaitGo()
	if err != nil {
		// The supervisor gave up (and says why) or died, before anything
		// changed: end without a word.
		if rerr == nil {
			_ = target.Close()
		}
		if errors.Is(err, agent.ErrSupervisorGone) {
			return agent.ExitCode(err)
		}
		return exitOK
	}
	defer func() {
		link.Finish(code)
		// A holder killed after its "done" (the tests' step "holder:done")
		// leaves a thawed target: the supervisor ends with the code it
		// announced.
		if err := faults.Point("holder:done"); err != nil {
			log.Warn().Err(err).Msg("fault injected after the done message")
		}
	}()
	if rerr == nil && path != target.Path {
		_ = target.Close()
		rerr = fmt.Errorf("the target's cgroup changed while it was resolved: %s for the supervisor, %s for the holder; try again", path, target.Path)
	}
	if rerr != nil {
		return fail(ev, log, rerr)
	}
	defer func() {
		if err := target.Close(); err != nil {
			log.Warn().Err(err).Msg("releasing the cgroup mount")
		}
	}()
	cfg := agent.HolderConfig{Duration: c.duration, Timeout: c.timeout, Log: log, Events: ev,
		StartTimeout: c.gate.startTimeout, Heartbeat: c.gate.heartbeat,
		Drop: agent.DropConfig{Mode: c.drop.mode, Filter: c.drop.filter, ProcRoot: c.procRoot, Explain: explainDrop}}
	for _, l := range c.leases {
		if l == agent.LeaseStdin {
			cfg.Stdin = stdin
		}
	}
	if ev.HasView() {
		// Enter and a resize (kubectl attach with a TTY sends one) paint
		// the terminal view again.
		if f, ok := stdin.(*os.File); ok && agent.IsTerminal(f) {
			cfg.Terminal = stdin
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				ev.Resize()
			}
		}()
	}
	code, err = agent.Hold(cfg, target, link, sigs)
	if err != nil {
		return fail(ev, log, err)
	}
	return code
}
