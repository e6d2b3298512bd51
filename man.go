package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/cgfreeze/cgfreeze/contract"
	"github.com/spf13/pflag"
)

// The man page: `cgfreeze man` prints cgfreeze(1) in roff, generated from
// the same flag definitions, command list and exit codes as the binary
// uses. A packager runs `cgfreeze man > cgfreeze.1` at build time (or `go
// run . man`); testdata/cgfreeze.1.golden is the page of this commit.

func runMan(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("man", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stdout, "Usage: cgfreeze man\n\nPrint the man page cgfreeze(1) in roff on stdout:\n  cgfreeze man > cgfreeze.1 && man ./cgfreeze.1\n")
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err, stdout, stderr, false, "man")
	}
	if fs.NArg() > 0 {
		return usageFail(stdout, stderr, false, fmt.Sprintf("man takes no arguments, got %q (see cgfreeze man --help)", fs.Args()))
	}
	fmt.Fprint(stdout, manPage())
	return exitOK
}

// roff escapes text for a roff line: backslashes, hyphens of flags (so
// that they copy as ASCII), and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			l = `\&` + l
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func manFlags(b *strings.Builder, fs *pflag.FlagSet, only func(*pflag.Flag) bool) {
	fs.VisitAll(func(f *pflag.Flag) {
		if only != nil && !only(f) {
			return
		}
		name := `\fB\-\-` + roff(f.Name) + `\fR`
		if f.Shorthand != "" {
			name = `\fB\-` + f.Shorthand + `\fR, ` + name
		}
		if f.Value.Type() != "bool" {
			if f.NoOptDefVal != "" {
				name += `[=\fI` + f.Value.Type() + `\fR]`
			} else {
				name += ` \fI` + roff(f.Value.Type()) + `\fR`
			}
		}
		fmt.Fprintf(b, ".TP\n%s\n%s", name, roff(f.Usage))
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0s" {
			fmt.Fprintf(b, " (default: %s)", roff(f.DefValue))
		}
		b.WriteString("\n")
	})
}

func manPage() string {
	var b strings.Builder
	b.WriteString(`.TH CGFREEZE 1 "" "cgfreeze" "User Commands"
.SH NAME
cgfreeze \- freeze a container's processes through the cgroup freezer, hold, then thaw
.SH SYNOPSIS
`)
	for _, c := range commands {
		fmt.Fprintf(&b, ".B %s\n.br\n", roff(c.synopsis))
	}
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roff(strings.TrimSpace(aboutTarget)) + "\n.PP\n")
	b.WriteString(roff(strings.TrimSpace(commandHelp["freeze"])) + "\n")
	b.WriteString(".SH COMMANDS\n")
	for _, c := range commands {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roff(c.name), roff(c.summary))
	}
	b.WriteString(".SH OPTIONS\nThe flags of freeze; thaw and status take the target and output flags too.\n")
	manFlags(&b, commandFlags("freeze"), nil)
	b.WriteString(".TP\n\\fB\\-\\-version\\fR\nprint the version and exit\n")
	b.WriteString(".PP\nthaw only:\n")
	manFlags(&b, commandFlags("thaw"), func(f *pflag.Flag) bool { return f.Name == "timeout" })
	b.WriteString(".PP\nstatus only:\n")
	manFlags(&b, commandFlags("status"), func(f *pflag.Flag) bool { return f.Name == "exit-code" })
	b.WriteString(`.SH TERMINAL VIEW
When stderr (or else stdout) is a terminal, a freeze shows what it froze (the container ID or
cgroup, the processes, the strategy), how to thaw (Ctrl\-C, or the \-\-duration
deadline with a countdown) and a status line that updates every second (frozen
for how long, processes, connections dropped, repairs). Enter, or a resize of
the terminal (SIGWINCH, which kubectl attach sends when it attaches with a TTY),
paints it again. Nothing of this is written when neither is a terminal: the
events on stdout stay as they are.
.SH EVENTS
On stdout, one per line: text (event key=value ...) or, with \-o json, one JSON
object per line with "event", "time" (RFC 3339, microseconds, UTC) and "schema"
(` + fmt.Sprint(contract.Schema) + `). Events:
`)
	for _, e := range contract.Events {
		fmt.Fprintf(&b, ".BR %s\n", roff(e))
	}
	b.WriteString(".PP\nA usage error under \\-o json is an error event with exit_code 2.\n")
	b.WriteString(".SH EXIT STATUS\n")
	for _, e := range contract.ExitCodes {
		fmt.Fprintf(&b, ".TP\n.B %d\n%s\n", e.Code, roff(e.Meaning))
	}
	b.WriteString(".PP\nWith status \\-\\-exit\\-code, the target's state:\n")
	for _, e := range contract.StatusCodes {
		fmt.Fprintf(&b, ".TP\n.B %d\n%s\n", e.Code, roff(e.Meaning))
	}
	b.WriteString(`.SH EXAMPLES
.TP
Freeze the app container of a pod for 30 seconds:
kubectl debug \-it pod/app \-\-target=app \-\-profile=sysadmin \-\-image=REGISTRY/cgfreeze \-\-arguments\-only \-\- \-\-duration 30s
.TP
Ask whether a target is frozen:
cgfreeze status \-\-pid 4242 \-\-exit\-code; echo $?
.SH SEE ALSO
.BR runc (8),
.BR cgroups (7);
docs/usage.md and docs/design.md in the cgfreeze source.
`)
	return b.String()
}
