// Command cgfreeze freezes a container's processes through the cgroup
// freezer, holds them frozen until a signal, a duration or its caller ends
// the hold, then thaws them and puts every process back where it was.
//
// See docs/usage.md for the command line, events and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/procs"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
)

// earlyHolder lets a freeze start its holder before the supervisor has
// resolved the target (supervisor.go, startHolder). The unit tests, whose
// binary is not cgfreeze, switch it off.
var earlyHolder = true

// exitAfterRun: run's caller is main, which exits as soon as it returns.
// The signals caught then stay caught to the end: signal.Stop disables
// each with a round trip to a thread of the Go runtime's own (0.05 to
// 0.2 ms apiece on 2 CPUs), in both processes, between the thaw and the
// exit the caller waits for. The tests, which call run in their own
// process, stop them.
var exitAfterRun bool

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes: contract/exitcodes.go, docs/usage.md explains each.
const (
	exitOK       = contract.ExitOK
	exitError    = contract.ExitError
	exitUsage    = contract.ExitUsage
	exitNoTarget = contract.ExitNoTarget
)

func main() {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// A write to a closed stdout returns EPIPE (the event writer ends the
	// hold on it, exit 15) instead of killing the process with SIGPIPE:
	// with SIGPIPE ignored, the Go runtime does not raise it. Ignored, not
	// notified: signal.Notify enables a signal with a round trip to a
	// thread of the runtime's own (which it starts for the first), where
	// Ignore sets the disposition at once. The holder, the only process
	// cgfreeze starts, inherits SIG_IGN and ignores it too.
	signal.Ignore(syscall.SIGPIPE)
	exitAfterRun = true
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// config is the parsed command line of freeze, thaw and status.
type config struct {
	cmd       string
	pid       int
	cgVersion int
	duration  time.Duration
	timeout   time.Duration
	output    string
	logLevel  string
	logFormat string
	procRoot  string
	sysCgroup string
	cgMount   string
	leases    []string
	drop      dropConfig
	gate      gateConfig

	// issue 3: the target by container ID, and whether --pid was given
	// (the default PID 1 is checked for being a workload).
	containerID string
	pidSet      bool

	// status --exit-code: exit with the target's state (statusCodes).
	exitCode bool
}

// defineFlags registers the flags of a target command (freeze, thaw,
// status, __hold) on a new flag set; check validates what only parses
// together (the drop flags), once parsed.
func defineFlags(cmd string, c *config, leases *[]string) (fs *pflag.FlagSet, check func() []string) {
	fs = pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.IntVarP(&c.pid, "pid", "p", 1, "a process of the target; its cgroup is the target")
	fs.StringVar(&c.containerID, "container-id", "", "the target by container ID or a unique prefix (matched in /proc/*/cgroup), instead of --pid")
	fs.IntVar(&c.cgVersion, "cgroup-version", 0, "cgroup version 1 or 2 (default: detected)")
	check = func() []string { return nil }
	if cmd == "freeze" || cmd == holdCommand {
		fs.DurationVarP(&c.duration, "duration", "d", 0, "thaw by itself after this long (0: hold until a signal)")
		fs.StringSliceVar(leases, "lease", nil, "also thaw when the caller goes: stdin (stdin reaches EOF), parent (the parent process exits)")
		checkDrop, checkGate := dropFlags(fs, &c.drop), gateFlags(fs, &c.gate)
		// The gate's flags need --lease stdin: c.leases is set by then.
		check = func() []string { return append(checkDrop(), checkGate(c.leases)...) }
	}
	switch cmd {
	case "freeze", holdCommand:
		fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long the freeze, and then the thaw, may each take to complete; a freeze that does not is rolled back")
	case "thaw":
		fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long the thaw may take to complete")
	case "status":
		fs.BoolVar(&c.exitCode, "exit-code", false, "exit with the target's state: 20 thawed, 21 frozen and held by a live cgfreeze, 22 frozen and left by a dead cgfreeze, 23 frozen by another tool, 24 freezing")
	}
	fs.StringVarP(&c.output, "output", "o", "text", "events on stdout: text or json (one JSON object per line)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error, disabled")
	fs.StringVar(&c.logFormat, "log-format", "console", "log format on stderr: console or json")
	fs.StringVar(&c.procRoot, "proc", "/proc", "the proc filesystem of the target's PID namespace")
	fs.StringVar(&c.sysCgroup, "sys-cgroup", "/sys/fs/cgroup", "where detection looks for the mounted cgroup filesystem")
	fs.StringVar(&c.cgMount, "cgroup-mount", "", "use the hierarchy mounted here instead of a private mount (where mounting is not allowed)")
	return fs, check
}

func parseFlags(cmd string, args []string, stdout, stderr io.Writer) (config, int, bool) {
	c := config{cmd: cmd}
	var leases []string
	fs, checkDrop := defineFlags(cmd, &c, &leases)
	fs.SetOutput(stdout)
	asJSON := wantsJSON(args)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: cgfreeze %s [flags]\n\n%s\nFlags:\n%s", cmd, commandHelp[cmd], fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stderr)
		}
		if errors.Is(err, pflag.ErrHelp) {
			return c, exitOK, false
		}
		return c, usageFail(stdout, stderr, asJSON, err.Error()+hintFlagError(fs, err.Error())+" (see cgfreeze "+cmd+" --help)"), false
	}
	var bad []string
	c.pidSet = fs.Changed("pid")
	if c.pidSet && fs.Changed("container-id") {
		bad = append(bad, "--pid and --container-id name the target twice: give one")
	} else if fs.Changed("container-id") && strings.TrimSpace(c.containerID) == "" {
		bad = append(bad, "--container-id must not be empty")
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected arguments %q", fs.Args())+hintArguments(args, fs.Args()))
	}
	if c.cgVersion != 0 && c.cgVersion != 1 && c.cgVersion != 2 {
		bad = append(bad, fmt.Sprintf("--cgroup-version must be 1 or 2, not %d", c.cgVersion))
	}
	if c.pid <= 0 {
		bad = append(bad, fmt.Sprintf("--pid must be a positive PID, not %d", c.pid))
	}
	if c.duration < 0 {
		bad = append(bad, "--duration must not be negative")
	}
	if cmd != "status" && c.timeout <= 0 {
		bad = append(bad, "--timeout must be positive")
	}
	if c.output != "text" && c.output != "json" {
		bad = append(bad, fmt.Sprintf("--output must be text or json, not %q", c.output))
	}
	if c.logFormat != "console" && c.logFormat != "json" {
		bad = append(bad, fmt.Sprintf("--log-format must be console or json, not %q", c.logFormat))
	}
	if _, err := zerolog.ParseLevel(c.logLevel); err != nil {
		bad = append(bad, fmt.Sprintf("--log-level: unknown level %q", c.logLevel))
	}
	if l, err := agent.ParseLeases(leases); err != nil {
		bad = append(bad, "--"+err.Error())
	} else {
		c.leases = l
	}
	bad = append(bad, checkDrop()...)
	if len(bad) > 0 {
		return c, usageFail(stdout, stderr, asJSON, fmt.Sprintf("%s (see cgfreeze %s --help)", strings.Join(bad, "; "), cmd)), false
	}
	return c, exitOK, true
}

var commandHelp = map[string]string{
	"freeze": `Freeze the target's cgroup, confirm it, and hold it frozen until SIGINT,
SIGTERM or SIGHUP (or --duration); then thaw it, put every process back in the
cgroup it came from, remove what cgfreeze created and exit 0.
`,
	"thaw": `Undo a freeze that a cgfreeze left on the target (its holder died): thaw it,
move processes back from the cgfreeze child cgroup and remove it. Nothing to do
is success. A freeze by another tool, or one a running cgfreeze holds, is left
alone.
`,
	"status": `Show the target's cgroup, the cgroup version, how cgfreeze would freeze it,
its freezer state and who froze it. Changes nothing. With --exit-code, exit
with the target's state (a failure keeps its own code, 1 to 16):
  20  thawed: the target runs
  21  frozen by cgfreeze, and a live cgfreeze holds it
  22  frozen by a cgfreeze that is gone (cgfreeze thaw undoes it)
  23  frozen by another tool (runc pause, docker pause, the runtime)
  24  freezing: the kernel has not finished (or a tool is half-way)
`,
}

func newLogger(c config, stderr io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(c.logLevel)
	w := stderr
	if c.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: stderr, NoColor: true, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// outputFlushLimit bounds the wait for the last events to reach a stdout
// that does not move: the target is thawed by then, and the process ends
// anyway.
const outputFlushLimit = 500 * time.Millisecond

func runTargetCommand(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, code, ok := parseFlags(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	log := newLogger(c, stderr)
	ev := newEventWriter(c, stdout, stderr)
	defer ev.Close(outputFlushLimit)

	// Signals are caught before anything changes, so that a signal during
	// the freeze rolls it back instead of killing cgfreeze half-way.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if !exitAfterRun {
		defer signal.Stop(sigs)
	}

	if cmd == holdCommand {
		return runHolder(c, ev, log, sigs, stdin)
	}
	// A freeze starts its holder at once, so that its start runs beside
	// the supervisor's resolution (supervisor.go, startHolder): it is the
	// guard of the supervisor's own freeze (agent.FreezeFirst).
	var early *agent.HolderProcess
	if cmd == "freeze" && earlyHolder && (c.containerID != "" || procs.Exists(c.procRoot, c.pid)) {
		faults.First()
		var err error
		if early, err = startHolder(c, stdin, stdout, stderr); err != nil {
			return fail(ev, log, err)
		}
	}
	target, err := freezer.Resolve(resolveOptions(c))
	if err != nil {
		if early != nil {
			early.Abort()
		}
		return fail(ev, log, err)
	}
	defer func() {
		if err := target.Close(); err != nil {
			log.Warn().Err(err).Msg("releasing the cgroup mount")
		}
	}()
	// From here on c.pid is the process the target was resolved from
	// (--container-id picks one), for whatever resolves it again.
	c.pid = target.PID
	log.Debug().Int("pid", c.pid).Str("cgroup", target.Path).Int("version", target.Version).
		Str("strategy", string(target.Strategy)).Bool("entered_namespace", target.EnteredNamespace).Msg("target resolved")

	switch cmd {
	case "status":
		return status(ev, log, target, c.exitCode)
	case "thaw":
		return recoverTarget(c, ev, log, target)
	}
	return supervise(c, ev, log, target, sigs, early, stdin, stdout, stderr)
}

// newEventWriter returns the writer of the events on stdout; the holder's
// also paints the terminal view of the hold (agent.View) when stderr, or
// else stdout, is a terminal. Nothing is painted on a pipe or a file: the
// events stay what they are.
func newEventWriter(c config, stdout, stderr io.Writer) *agent.Writer {
	asJSON := c.output == "json"
	outF, _ := stdout.(*os.File)
	errF, _ := stderr.(*os.File)
	var term *os.File
	switch {
	case c.cmd != holdCommand:
	case agent.IsTerminal(errF):
		term = errF
	case agent.IsTerminal(outF):
		term = outF
	}
	if term == nil {
		return agent.NewWriter(stdout, asJSON)
	}
	// The supervisor, the holder's parent, is what SIGTERM thaws through.
	view := agent.NewView(term, c.duration, os.Getppid(), agent.IsTerminal(outF))
	return agent.NewViewWriter(stdout, asJSON, view, func() int { return agent.TerminalWidth(term) })
}

func resolveOptions(c config) freezer.Options {
	return freezer.Options{PID: c.pid, ProcRoot: c.procRoot, SysCgroup: c.sysCgroup, Version: c.cgVersion, CgroupMount: c.cgMount,
		PIDDefaulted: !c.pidSet, ContainerID: c.containerID, Recovering: c.cmd == "thaw" || c.cmd == "status"}
}

// status reports the target's state; with exitCode, it exits with it
// (contract.StatusCodes), and a failure keeps its error's code.
func status(ev *agent.Writer, log zerolog.Logger, t *freezer.Target, exitCode bool) int {
	st, err := freezer.Inspect(t)
	if err != nil {
		return fail(ev, log, err)
	}
	e := agent.Base(t)
	e.Event, e.State, e.FrozenBy, e.Holder = contract.EventStatus, st.State, st.FrozenBy, st.Holder
	e.Processes, e.Held = &st.Processes, &st.Held
	e.Namespace = "own"
	if t.EnteredNamespace {
		e.Namespace = "target"
	}
	ev.Emit(e)
	if exitCode {
		return contract.StatusCode(st.State, st.FrozenBy, st.Held)
	}
	return exitOK
}

func recoverTarget(c config, ev *agent.Writer, log zerolog.Logger, t *freezer.Target) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	rec, err := freezer.Recover(ctx, t)
	if err != nil {
		return fail(ev, log, err)
	}
	e := agent.Base(t)
	e.Event, e.State = contract.EventRecovered, "thawed"
	e.ElapsedMS = agent.MS(time.Since(start))
	if rec.Recovered {
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
		log.Info().Int("holder", rec.Holder).Msg("undid a freeze that a cgfreeze left behind")
	} else {
		e.Event = contract.EventNothingToThaw
	}
	ev.Emit(e)
	return exitOK
}

// hints say what to do about a failure, by exit code: the library's errors
// say what failed, the command adds the advice.
var hints = map[int]string{
	contract.ExitThawFailed:    "the target may still be frozen (a holding cgfreeze hands it to its watchdog): run `cgfreeze thaw` with the same flags",
	contract.ExitReadOnly:      "run privileged so that cgfreeze can make its own mount (kubectl debug --profile=sysadmin)",
	contract.ExitNotPrivileged: "run privileged: kubectl debug --profile=sysadmin, docker run --privileged, or as root on the node",
	contract.ExitFreezeFailed:  "the freeze was rolled back; the target runs as before",
	contract.ExitDropFailed:    "the target was thawed and runs as before",
}

// fail reports an error (the log on stderr, the error event on stdout) and
// returns its exit code.
func fail(ev *agent.Writer, log zerolog.Logger, err error) int {
	code, msg := agent.ExitCode(err), err.Error()
	if h := hints[code]; h != "" {
		msg += ": " + h
	}
	log.Error().Int("exit_code", code).Msg(msg)
	ev.Emit(contract.Event{Event: contract.EventError, Error: msg, ExitCode: &code})
	return code
}
