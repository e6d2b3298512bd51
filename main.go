// Command cgfreeze freezes a container's processes through the cgroup
// freezer, holds them frozen until a signal, a duration or its caller ends
// the hold, then thaws them and puts every process back where it was.
//
// See docs/usage.md for the command line, events and exit codes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

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

// Exit codes; docs/usage.md explains each.
const (
	exitOK            = 0
	exitError         = 1
	exitUsage         = 2
	exitNoTarget      = 3
	exitUnsafeTarget  = 4
	exitNotPrivileged = 5
	exitNoFreezer     = 6
	exitReadOnly      = 7
	exitAlreadyFrozen = 8
	exitFreezeFailed  = 9
	exitThawFailed    = 10
	exitDropFailed    = 11
	exitHolderDied    = 12
)

func main() {
	zerolog.TimeFieldFormat = time.RFC3339Nano
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
	// parentPidfd is the holder's descriptor of a pidfd for --lease parent.
	parentPidfd int
	// goFD is an early holder's descriptor of its supervisor's word
	// (supervisor.go, startHolder).
	goFD int

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
	if cmd == "freeze" || cmd == holdCommand {
		fs.DurationVarP(&c.duration, "duration", "d", 0, "thaw by itself after this long (0: hold until a signal)")
		fs.StringSliceVar(&leases, "lease", nil, "also thaw when the caller goes: stdin (stdin reaches EOF), parent (the parent process exits)")
		checkDrop = dropFlags(fs, &c.drop)
	}
	if cmd == holdCommand {
		fs.IntVar(&c.parentPidfd, "parent-pidfd", 0, "a pidfd whose process's exit ends the hold (--lease parent)")
		fs.IntVar(&c.goFD, "go-fd", 0, "wait for the supervisor's word on this descriptor before changing anything")
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
	if l, err := parseLeases(leases); err != nil {
		bad = append(bad, err.Error())
	} else {
		c.leases = l
	}
	bad = append(bad, checkDrop()...)
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

func runTargetCommand(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, code, ok := parseFlags(cmd, args, stdout, stderr)
	if !ok {
		return code
	}
	log := newLogger(c, stderr)
	ev := &emitter{out: stdout, json: c.output == "json"}

	// Signals are caught before anything changes, so that a signal during
	// the freeze rolls it back instead of killing cgfreeze half-way.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// A freeze of a PID starts its holder at once, to resolve the target
	// at the same time as the supervisor (supervisor.go, startHolder).
	var early *holderProc
	if cmd == "freeze" && c.containerID == "" && earlyHolder && procs.Exists(c.procRoot, c.pid) {
		faults.Disable()
		var err error
		if early, err = startHolder(c, stdin, stdout, stderr, true); err != nil {
			return fail(ev, log, err)
		}
	}
	target, err := freezer.Resolve(freezer.Options{PID: c.pid, ProcRoot: c.procRoot, SysCgroup: c.sysCgroup, Version: c.cgVersion, CgroupMount: c.cgMount,
		PIDDefaulted: !c.pidSet, ContainerID: c.containerID, Recovering: cmd == "thaw" || cmd == "status"})
	if c.goFD > 0 {
		// An early holder: the supervisor has the last word.
		path, ok := awaitSupervisor(c.goFD)
		if !ok {
			// It could not resolve the target and says why, or it died
			// before anything changed.
			if err == nil {
				_ = target.Close()
			}
			return exitOK
		}
		if err == nil && path != target.Path {
			_ = target.Close()
			err = fmt.Errorf("the target's cgroup changed while it was resolved: %s for the supervisor, %s for the holder; try again", path, target.Path)
		}
	}
	if err != nil {
		if early != nil {
			early.abort()
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
	case "freeze":
		return supervise(c, ev, log, target, sigs, early, stdin, stdout, stderr)
	}
	return freezeAndHold(c, ev, log, target, sigs, stdin)
}

func base(t *freezer.Target) event {
	return event{PID: t.PID, Cgroup: t.Path, Version: t.Version, Strategy: string(t.Strategy), ContainerID: t.ContainerID}
}

func status(ev *emitter, log zerolog.Logger, t *freezer.Target) int {
	st, err := freezer.Inspect(t)
	if err != nil {
		return fail(ev, log, err)
	}
	e := base(t)
	e.Event, e.State, e.FrozenBy, e.Holder = "status", st.State, st.FrozenBy, st.Holder
	e.Processes, e.Held = &st.Processes, &st.Held
	e.Namespace = "own"
	if t.EnteredNamespace {
		e.Namespace = "target"
	}
	ev.emit(e)
	return exitOK
}

func recoverTarget(c config, ev *emitter, log zerolog.Logger, t *freezer.Target) int {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	rec, err := freezer.Recover(ctx, t)
	if err != nil {
		return fail(ev, log, err)
	}
	e := base(t)
	e.Event, e.State = "recovered", "thawed"
	e.ElapsedMS = ms(time.Since(start))
	if rec.Recovered {
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
		log.Info().Int("holder", rec.Holder).Msg("undid a freeze that a cgfreeze left behind")
	} else {
		e.Event = "nothing_to_thaw"
	}
	ev.emit(e)
	return exitOK
}

// freezeAndHold is the holder: it freezes, holds and thaws, and tells its
// supervisor when the target is known to be thawed (supervisor.go).
func freezeAndHold(c config, ev *emitter, log zerolog.Logger, t *freezer.Target, sigs <-chan os.Signal, stdin io.Reader) (code int) {
	link, err := holderLink()
	if err != nil {
		return fail(ev, log, err)
	}
	defer func() {
		// The supervisor stands by only when the target is known to be
		// thawed: after a thaw, a rollback, or a refusal.
		if code != exitThawFailed {
			_, _ = link.Write([]byte{holderDone})
		}
		_ = link.Close()
	}()
	var parent *os.File
	if c.parentPidfd > 0 {
		parent = os.NewFile(uintptr(c.parentPidfd), "parent pidfd")
	}
	leaseEnded := startLeases(c.leases, stdin, parent)

	interruptible, interrupt := context.WithCancelCause(context.Background())
	defer interrupt(nil)
	ctx, cancel := context.WithTimeoutCause(interruptible, c.timeout, fmt.Errorf("the freeze took longer than --timeout %v", c.timeout))
	defer cancel()
	stopWatch := make(chan struct{})
	caught := make(chan os.Signal, 1) // the signal the watch consumed, if any
	go func() {
		select {
		case s := <-sigs:
			log.Warn().Str("signal", s.String()).Msg("signal during the freeze: rolling back")
			interrupt(fmt.Errorf("interrupted by %v", s))
			caught <- s
		case <-stopWatch:
		}
		close(caught)
	}()
	start := time.Now()
	frozen, err := freezer.Freeze(ctx, t)
	close(stopWatch)
	lateSignal, late := <-caught
	if err != nil {
		return fail(ev, log, err)
	}
	frozenAt := time.Now()
	if rec := frozen.Recovered; rec.Recovered {
		log.Warn().Int("holder", rec.Holder).Str("strategy", string(rec.Strategy)).Msg("undid a freeze that a dead cgfreeze had left on the target, before freezing")
		e := base(t)
		e.Event, e.State, e.Reason = "recovered", "thawed", "leftover"
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
		ev.emit(e)
	}
	e := base(t)
	e.Event, e.Processes, e.ElapsedMS = "frozen", &frozen.Processes, ms(frozenAt.Sub(start))
	ev.emit(e)
	// A signal that came with the confirmation ends the hold at once:
	// the connections are left alone then.
	if c.drop.mode != dropOff && !late {
		if err := dropConnections(c, ev, log, t); err != nil {
			return thawAfterDropFailure(c, ev, log, frozen, err)
		}
	}
	if err := faults.Point("hold"); err != nil {
		log.Warn().Err(err).Msg("fault injected while holding")
	}

	var timer <-chan time.Time
	if c.duration > 0 {
		tm := time.NewTimer(c.duration)
		defer tm.Stop()
		timer = tm.C
	}
	// Holding costs nothing: the goroutine sleeps until a signal or the timer.
	e = base(t)
	e.Event, e.Processes = "thawed", &frozen.Processes
	if late {
		// The signal came as the freeze was confirmed: end at once.
		e.Reason, e.Signal = "signal", lateSignal.String()
	} else {
		select {
		case s := <-sigs:
			e.Reason, e.Signal = "signal", s.String()
		case <-timer:
			e.Reason = "duration"
		case l := <-leaseEnded:
			e.Reason = l
		}
	}
	log.Debug().Str("reason", e.Reason).Msg("thawing")
	// Further signals stay caught (sigs is still registered) and are
	// ignored: a thaw is never cut short.
	thawCtx, thawCancel := context.WithTimeout(context.Background(), c.timeout)
	defer thawCancel()
	thawStart := time.Now()
	if err := frozen.Thaw(thawCtx); err != nil {
		frozen.Abandon()
		if st, serr := freezer.Inspect(t); serr == nil {
			err = fmt.Errorf("%w; left: the target is %s with %d processes", err, st.State, st.Processes)
		}
		return fail(ev, log, err)
	}
	e.ElapsedMS, e.HeldMS = ms(time.Since(thawStart)), ms(thawStart.Sub(frozenAt))
	ev.emit(e)
	return exitOK
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// exitCodes maps the freezer's errors to exit codes, most specific first.
var exitCodes = []struct {
	err  error
	code int
	hint string
}{
	{freezer.ErrThawFailed, exitThawFailed, "the target may still be frozen (a holding cgfreeze hands it to its watchdog): run `cgfreeze thaw` with the same flags"},
	{freezer.ErrTargetNotFound, exitNoTarget, ""},
	{freezer.ErrAmbiguousContainer, exitUsage, ""},
	{freezer.ErrUnsafeTarget, exitUnsafeTarget, ""},
	{freezer.ErrReadOnly, exitReadOnly, "run privileged so that cgfreeze can make its own mount (kubectl debug --profile=sysadmin)"},
	{freezer.ErrNotPrivileged, exitNotPrivileged, "run privileged: kubectl debug --profile=sysadmin, docker run --privileged, or as root on the node"},
	{freezer.ErrNoFreezer, exitNoFreezer, ""},
	{freezer.ErrAlreadyFrozen, exitAlreadyFrozen, ""},
	{freezer.ErrFreezeFailed, exitFreezeFailed, "the freeze was rolled back; the target runs as before"},
	{errDropFailed, exitDropFailed, "the target was thawed and runs as before"},
}

func fail(ev *emitter, log zerolog.Logger, err error) int {
	code, msg := exitError, err.Error()
	for _, m := range exitCodes {
		if errors.Is(err, m.err) {
			code = m.code
			if m.hint != "" {
				msg += ": " + m.hint
			}
			break
		}
	}
	log.Error().Int("exit_code", code).Msg(msg)
	ev.emit(event{Event: "error", Error: msg, ExitCode: &code})
	return code
}

// event is one line on stdout; docs/usage.md documents every field.
type event struct {
	Event     string  `json:"event"`
	PID       int     `json:"pid,omitempty"`
	Cgroup    string  `json:"cgroup,omitempty"`
	Version   int     `json:"version,omitempty"`
	Strategy  string  `json:"strategy,omitempty"`
	Processes *int    `json:"processes,omitempty"`
	ElapsedMS float64 `json:"elapsed_ms,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	Signal    string  `json:"signal,omitempty"`
	HeldMS    float64 `json:"held_ms,omitempty"`
	State     string  `json:"state,omitempty"`
	FrozenBy  string  `json:"frozen_by,omitempty"`
	Holder    int     `json:"holder,omitempty"`
	Namespace string  `json:"namespace,omitempty"`
	Held      *bool   `json:"held,omitempty"`
	// connections_dropped
	Count       *int          `json:"count,omitempty"`
	Connections *[]connection `json:"connections,omitempty"`
	Shared      []connection  `json:"shared,omitempty"`
	Filtered    int           `json:"filtered,omitempty"`
	Hidden      int           `json:"hidden,omitempty"`
	Warning     string        `json:"warning,omitempty"`
	Error       string        `json:"error,omitempty"`
	ExitCode    *int          `json:"exit_code,omitempty"`

	ContainerID string `json:"container_id,omitempty"`
}

type emitter struct {
	out  io.Writer
	json bool
}

func (em *emitter) emit(e event) {
	if em.json {
		b, _ := json.Marshal(e)
		fmt.Fprintf(em.out, "%s\n", b)
		return
	}
	if e.Event == "error" {
		return // a person reads the log on stderr, which says it once
	}
	fields := map[string]string{}
	add := func(k, v string) {
		if v != "" {
			fields[k] = v
		}
	}
	if e.PID != 0 {
		add("pid", fmt.Sprint(e.PID))
	}
	add("cgroup", e.Cgroup)
	add("container_id", e.ContainerID)
	if e.Version != 0 {
		add("version", fmt.Sprint(e.Version))
	}
	add("strategy", e.Strategy)
	if e.Processes != nil {
		add("processes", fmt.Sprint(*e.Processes))
	}
	if e.ElapsedMS > 0 {
		add("elapsed_ms", strconv.FormatFloat(e.ElapsedMS, 'f', -1, 64))
	}
	add("reason", e.Reason)
	add("signal", e.Signal)
	if e.HeldMS > 0 {
		add("held_ms", strconv.FormatFloat(e.HeldMS, 'f', -1, 64))
	}
	add("state", e.State)
	add("frozen_by", e.FrozenBy)
	if e.Holder != 0 {
		add("holder", fmt.Sprint(e.Holder))
	}
	add("namespace", e.Namespace)
	if e.Held != nil {
		add("held", fmt.Sprint(*e.Held))
	}
	if e.Count != nil {
		add("count", fmt.Sprint(*e.Count))
	}
	if e.Connections != nil {
		add("connections", connectionsText(*e.Connections))
	}
	add("shared", connectionsText(e.Shared))
	if e.Filtered != 0 {
		add("filtered", fmt.Sprint(e.Filtered))
	}
	if e.Hidden != 0 {
		add("hidden", fmt.Sprint(e.Hidden))
	}
	add("warning", e.Warning)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(e.Event)
	for _, k := range keys {
		v := fields[k]
		if strings.ContainsAny(v, " \t\"=\\") || !utf8.ValidString(v) {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	fmt.Fprintln(em.out, b.String())
}
