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
	"runtime/debug"
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
	// with SIGPIPE notified, the Go runtime does not raise it. Nobody
	// reads the channel, whose buffer of one drops the rest.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usageHead = `cgfreeze freezes a container's processes through the cgroup freezer and
thaws them when told to.

Usage:
  cgfreeze [freeze] [flags]   freeze the target, hold, then thaw (the default command)
  cgfreeze thaw [flags]       undo a freeze that cgfreeze left on the target (idempotent)
  cgfreeze status [flags]     show the target's cgroup, version, strategy and freezer state
  cgfreeze version            print the version

The target is the cgroup of --pid (default 1: in "kubectl debug --target=app
--profile=sysadmin" PID 1 is the app container's first process), or the
container that --container-id names (in a pod that shares its PID namespace).
Run "cgfreeze <command> --help" for a command's flags; docs/usage.md has the
events and exit codes.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "freeze"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usageHead)
		return exitOK
	}
	switch cmd {
	case "freeze", "thaw", "status":
		return runTargetCommand(cmd, args, stdin, stdout, stderr)
	case holdCommand:
		return runTargetCommand(holdCommand, args, stdin, stdout, stderr)
	case "version":
		fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprint(stdout, "Usage: cgfreeze version\n\nPrint cgfreeze's version and the commit it was built from.\n")
		}
		if err := fs.Parse(args); err != nil {
			return usageError(err, stderr)
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "cgfreeze: version takes no arguments, got %q (see cgfreeze version --help)\n", fs.Args())
			return exitUsage
		}
		fmt.Fprintf(stdout, "cgfreeze %s\n", buildVersion())
		return exitOK
	case "help":
		fmt.Fprint(stdout, usageHead)
		return exitOK
	}
	fmt.Fprintf(stderr, "cgfreeze: unknown command %q\n\n%s", cmd, usageHead)
	return exitUsage
}

func usageError(err error, stderr io.Writer) int {
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "cgfreeze: %v (see cgfreeze --help)\n", err)
	return exitUsage
}

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
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
}

func parseFlags(cmd string, args []string, stdout, stderr io.Writer) (config, int, bool) {
	c := config{cmd: cmd}
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(stdout)
	fs.IntVarP(&c.pid, "pid", "p", 1, "a process of the target; its cgroup is the target")
	fs.StringVar(&c.containerID, "container-id", "", "the target by container ID or a unique prefix (matched in /proc/*/cgroup), instead of --pid")
	fs.IntVar(&c.cgVersion, "cgroup-version", 0, "cgroup version 1 or 2 (default: detected)")
	var leases []string
	checkDrop := func() []string { return nil }
	checkGate := func([]string) []string { return nil }
	if cmd == "freeze" || cmd == holdCommand {
		fs.DurationVarP(&c.duration, "duration", "d", 0, "thaw by itself after this long (0: hold until a signal)")
		fs.StringSliceVar(&leases, "lease", nil, "also thaw when the caller goes: stdin (stdin reaches EOF), parent (the parent process exits)")
		checkDrop = dropFlags(fs, &c.drop)
		checkGate = gateFlags(fs, &c.gate)
	}
	switch cmd {
	case "freeze", holdCommand:
		fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long the freeze, and then the thaw, may each take to complete; a freeze that does not is rolled back")
	case "thaw":
		fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long the thaw may take to complete")
	}
	fs.StringVarP(&c.output, "output", "o", "text", "events on stdout: text or json (one JSON object per line)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error, disabled")
	fs.StringVar(&c.logFormat, "log-format", "console", "log format on stderr: console or json")
	fs.StringVar(&c.procRoot, "proc", "/proc", "the proc filesystem of the target's PID namespace")
	fs.StringVar(&c.sysCgroup, "sys-cgroup", "/sys/fs/cgroup", "where detection looks for the mounted cgroup filesystem")
	fs.StringVar(&c.cgMount, "cgroup-mount", "", "use the hierarchy mounted here instead of a private mount (where mounting is not allowed)")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: cgfreeze %s [flags]\n\n%s\nFlags:\n%s", cmd, commandHelp[cmd], fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fs.SetOutput(stderr)
		}
		return c, usageError(err, stderr), false
	}
	var bad []string
	c.pidSet = fs.Changed("pid")
	if c.pidSet && fs.Changed("container-id") {
		bad = append(bad, "--pid and --container-id name the target twice: give one")
	} else if fs.Changed("container-id") && strings.TrimSpace(c.containerID) == "" {
		bad = append(bad, "--container-id must not be empty")
	}
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected arguments %q", fs.Args()))
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
	bad = append(bad, checkGate(c.leases)...)
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "cgfreeze: %s (see cgfreeze %s --help)\n", strings.Join(bad, "; "), cmd)
		return c, exitUsage, false
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
its freezer state and who froze it. Changes nothing.
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
	ev := agent.NewWriter(stdout, c.output == "json")
	defer ev.Close(outputFlushLimit)

	// Signals are caught before anything changes, so that a signal during
	// the freeze rolls it back instead of killing cgfreeze half-way.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if cmd == holdCommand {
		return runHolder(c, ev, log, sigs, stdin)
	}
	// A freeze of a PID starts its holder at once, to resolve the target
	// at the same time as the supervisor (supervisor.go, startHolder).
	var early *agent.HolderProcess
	if cmd == "freeze" && c.containerID == "" && earlyHolder && procs.Exists(c.procRoot, c.pid) {
		faults.Disable()
		var err error
		if early, err = startHolder(c, stdin, stdout, stderr); err != nil {
			return fail(ev, log, err)
		}
	}
	target, err := freezer.Resolve(resolveOptions(c, cmd))
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
		return status(ev, log, target)
	case "thaw":
		return recoverTarget(c, ev, log, target)
	}
	return supervise(c, ev, log, target, sigs, early, stdin, stdout, stderr)
}

func resolveOptions(c config, cmd string) freezer.Options {
	return freezer.Options{PID: c.pid, ProcRoot: c.procRoot, SysCgroup: c.sysCgroup, Version: c.cgVersion, CgroupMount: c.cgMount,
		PIDDefaulted: !c.pidSet, ContainerID: c.containerID, Recovering: cmd == "thaw" || cmd == "status"}
}

func status(ev *agent.Writer, log zerolog.Logger, t *freezer.Target) int {
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
