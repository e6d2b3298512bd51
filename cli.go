package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/spf13/pflag"
)

// The command line's conventions: the top-level help, --version, hints
// for the mistakes people make (a misspelt command, pause/resume, a bare
// PID, a space before an optional flag value), and usage errors as error
// events under -o json. cgfreeze stays on pflag rather than cobra:
// docs/usage.md ("Why pflag and not cobra") has the measurements.

// command is one subcommand of the top-level help.
type command struct {
	name, synopsis, summary string
}

// commands lists the subcommands in the order the help shows them.
var commands = []command{
	{"freeze", "cgfreeze [freeze] [flags]", "freeze the target, hold, then thaw (the default command)"},
	{"thaw", "cgfreeze thaw [flags]", "undo a freeze that cgfreeze left on the target (idempotent)"},
	{"status", "cgfreeze status [flags]", "show the target's cgroup, version, strategy and freezer state"},
	{"version", "cgfreeze version [-o json]", "print the version (also: cgfreeze --version)"},
	{"completion", "cgfreeze completion SHELL", "print the completion script for bash, zsh or fish"},
	{"man", "cgfreeze man", "print the man page (roff) on stdout"},
	{"help", "cgfreeze help", "print this help"},
}

const aboutTarget = `The target is the cgroup of --pid (default 1: in "kubectl debug --target=app
--profile=sysadmin" PID 1 is the app container's first process), or the
container that --container-id names (in a pod that shares its PID namespace).
`

// usage is the top-level help: the commands, the flags of the default
// command, and the exit codes, so that a user of the image, who has no
// docs/, reads everything here (and in cgfreeze man).
func usage() string {
	var b strings.Builder
	b.WriteString("cgfreeze freezes a container's processes through the cgroup freezer and\nthaws them when told to.\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-28s %s\n", c.synopsis, c.summary)
	}
	b.WriteString("\n" + aboutTarget)
	b.WriteString("A hold ends, and thaws, on Ctrl-C (SIGINT), SIGTERM, SIGHUP or --duration.\n")
	var c config
	var leases []string
	fs, _ := defineFlags("freeze", &c, &leases)
	b.WriteString("\nFlags of freeze (thaw and status take the target and output flags; run\n\"cgfreeze <command> --help\" for a command's own):\n")
	flags := fs.FlagUsages()
	b.WriteString(flags)
	// --version and --help in pflag's columns, without its "[=true|false]".
	first, _, _ := strings.Cut(flags, "\n")
	col := strings.Index(first, fs.Lookup("pid").Usage)
	fmt.Fprintf(&b, "%-*s%s\n%-*s%s\n", col, "      --version", "print the version and exit",
		col, "  -h, --help", "print this help (a command's: cgfreeze <command> --help)")
	b.WriteString("\nExit codes:\n")
	for _, e := range contract.ExitCodes {
		fmt.Fprintf(&b, "  %2d  %s\n", e.Code, e.Meaning)
	}
	fmt.Fprintf(&b, "  %d-%d  cgfreeze status --exit-code: the target's state (cgfreeze status --help)\n",
		contract.StatusCodes[0].Code, contract.StatusCodes[len(contract.StatusCodes)-1].Code)
	b.WriteString("\nEvents, exit codes and the terminal view in detail: cgfreeze man.\n")
	return b.String()
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "freeze"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 {
		switch args[0] {
		case "-h", "--help":
			fmt.Fprint(stdout, usage())
			return exitOK
		case "--version":
			return runVersion(args[1:], stdout, stderr)
		}
	}
	switch cmd {
	case "freeze", "thaw", "status", holdCommand:
		return runTargetCommand(cmd, args, stdin, stdout, stderr)
	case "version":
		return runVersion(args, stdout, stderr)
	case "completion":
		return runCompletion(args, stdout, stderr)
	case "man":
		return runMan(args, stdout, stderr)
	case "help":
		if len(args) == 1 && isCommand(args[0]) && args[0] != "help" {
			return run([]string{args[0], "--help"}, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage())
		return exitOK
	}
	return usageFail(stdout, stderr, wantsJSON(args), unknownCommand(cmd))
}

func isCommand(name string) bool {
	for _, c := range commands {
		if c.name == name {
			return true
		}
	}
	return false
}

// unknownCommand says what to do about a word that is not a command.
func unknownCommand(word string) string {
	msg := fmt.Sprintf("unknown command %q", word)
	switch strings.ToLower(word) {
	case "pause", "suspend", "stop", "freeze-start":
		return msg + `: there is no pause/resume pair; "cgfreeze freeze" (the default command) freezes the target and holds it until Ctrl-C, SIGTERM or --duration, then thaws it (see cgfreeze --help)`
	case "resume", "unpause", "unfreeze", "continue", "cont", "start":
		return msg + `: a freeze ends when its cgfreeze ends: Ctrl-C in its terminal, kill -TERM <its PID>, or --duration. "cgfreeze thaw" only undoes a freeze whose cgfreeze died, and refuses a live hold (see cgfreeze --help)`
	}
	if _, err := strconv.Atoi(word); err == nil {
		return fmt.Sprintf("%s: did you mean --pid %s? (cgfreeze --pid %s; see cgfreeze --help)", msg, word, word)
	}
	if s := closest(word, commandNames()); s != "" {
		return fmt.Sprintf("%s: did you mean %q? (see cgfreeze --help)", msg, s)
	}
	return msg + " (see cgfreeze --help)"
}

func commandNames() []string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return names
}

// closest returns the candidate nearest to word, if it is near enough to
// be what was meant: at most 2 edits (1 for words of up to 4 letters), or
// a prefix of at least 3 letters.
func closest(word string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(word), c)
		if len(word) >= 3 && strings.HasPrefix(c, strings.ToLower(word)) {
			d = 1
		}
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(word) <= 4 {
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the edit distance between a and b, a swap of two
// neighbours counting as one edit (optimal string alignment).
func editDistance(a, b string) int {
	prevPrev := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prevPrev[j-2]+1) // a transposition
			}
		}
		prevPrev, prev, cur = prev, cur, prevPrev
	}
	return prev[len(b)]
}

// hintFlagError adds a did-you-mean to pflag's "unknown flag: --x".
func hintFlagError(fs *pflag.FlagSet, msg string) string {
	name, ok := strings.CutPrefix(msg, "unknown flag: --")
	if !ok {
		return ""
	}
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	if s := closest(name, names); s != "" {
		return fmt.Sprintf(": did you mean --%s?", s)
	}
	return ""
}

// hintArguments says what stray arguments were probably meant to be: a
// PID without --pid, or the value of --drop-connections after a space
// (its value is optional, so pflag reads only "=value" as its value).
func hintArguments(args, rest []string) string {
	if len(rest) == 0 {
		return ""
	}
	for i, a := range args {
		if i > 0 && a == rest[0] && args[i-1] == "--drop-connections" {
			return fmt.Sprintf(": did you mean --drop-connections=%s? (its value is optional, so it needs the \"=\")", a)
		}
	}
	if _, err := strconv.Atoi(rest[0]); err == nil && len(rest) == 1 {
		return fmt.Sprintf(": did you mean --pid %s?", rest[0])
	}
	return ""
}

// wantsJSON tells whether the command line asks for JSON events, read
// before (or without) parsing it, so that a usage error is an error event.
func wantsJSON(args []string) bool {
	asJSON := false
	for i, a := range args {
		switch {
		case a == "--":
			return asJSON
		case a == "-o" || a == "--output":
			if i+1 < len(args) {
				asJSON = args[i+1] == "json"
			}
		case strings.HasPrefix(a, "--output="), strings.HasPrefix(a, "-o="):
			asJSON = a[strings.IndexByte(a, '=')+1:] == "json"
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			asJSON = a[2:] == "json"
		}
	}
	return asJSON
}

// usageFail reports a bad command line: on stderr, and with -o json as an
// error event on stdout (exit_code 2). It returns exitUsage.
func usageFail(stdout, stderr io.Writer, asJSON bool, msg string) int {
	fmt.Fprintf(stderr, "cgfreeze: %s\n", msg)
	if asJSON {
		code := exitUsage
		ev := agent.NewWriter(stdout, true)
		ev.Emit(contract.Event{Event: contract.EventError, Error: msg, ExitCode: &code})
		ev.Close(outputFlushLimit)
	}
	return exitUsage
}

func usageError(err error, stdout, stderr io.Writer, asJSON bool, helpOf string) int {
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	return usageFail(stdout, stderr, asJSON, fmt.Sprintf("%v (see cgfreeze %s --help)", err, helpOf))
}

// runVersion is `cgfreeze version` and `cgfreeze --version`.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.StringP("output", "o", "text", "text, or json (one object: version, commit, go, schema)")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: cgfreeze version [-o json]\n\nPrint cgfreeze's version and the commit it was built from.\n\nFlags:\n%s", fs.FlagUsages())
	}
	asJSON := wantsJSON(args)
	if err := fs.Parse(args); err != nil {
		return usageError(err, stdout, stderr, asJSON, "version")
	}
	if fs.NArg() > 0 {
		return usageFail(stdout, stderr, asJSON, fmt.Sprintf("version takes no arguments, got %q (see cgfreeze version --help)", fs.Args()))
	}
	v := versionInfo()
	switch *output {
	case "json":
		b, _ := json.Marshal(v)
		fmt.Fprintf(stdout, "%s\n", b)
	case "text":
		fmt.Fprintf(stdout, "cgfreeze %s\n", buildVersion())
	default:
		return usageFail(stdout, stderr, false, fmt.Sprintf("--output must be text or json, not %q (see cgfreeze version --help)", *output))
	}
	return exitOK
}

func versionInfo() contract.VersionInfo {
	v := contract.VersionInfo{Version: version, Go: runtime.Version(), Schema: contract.Schema}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

func buildVersion() string {
	v := versionInfo()
	if len(v.Commit) >= 12 {
		return v.Version + " (" + v.Commit[:12] + ")"
	}
	return v.Version
}
