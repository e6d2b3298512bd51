package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/cgfreeze/cgfreeze/contract"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/rs/zerolog"
)

// TestMain keeps a freeze from starting its holder before it resolved the
// target: the holder is this binary, which is not cgfreeze.
func TestMain(m *testing.M) {
	earlyHolder = false
	os.Exit(m.Run())
}

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// Every test below that gets past flag parsing passes --proc pointing at an
// empty directory, so that a regression that lets it run on cannot reach a
// real process or cgroup: the target is then "not found" (exit 3).

func runCapture(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// stamped matches the time and schema that the event writer puts second
// and third in every JSON event.
var stamped = regexp.MustCompile(`^(\{"event":"[a-z_]+"),"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z","schema":2,`)

// unstamp removes the time and the schema from each line of JSON events,
// after checking that every line has them, for a comparison with a fixed
// text.
func unstamp(t *testing.T, out string) string {
	t.Helper()
	lines := strings.SplitAfter(out, "\n")
	for i, l := range lines {
		if l == "" {
			continue
		}
		if !stamped.MatchString(l) {
			t.Errorf("event %q has no time and schema", l)
		}
		lines[i] = stamped.ReplaceAllString(l, "$1,")
	}
	return strings.Join(lines, "")
}

func TestHelpGolden(t *testing.T) {
	for _, tt := range []struct {
		golden string
		args   []string
	}{
		{"help.golden", []string{"--help"}},
		{"freeze-help.golden", []string{"freeze", "--help"}},
		{"thaw-help.golden", []string{"thaw", "--help"}},
		{"status-help.golden", []string{"status", "--help"}},
		{"version-help.golden", []string{"version", "--help"}},
		{"completion-help.golden", []string{"completion", "--help"}},
		{"man-help.golden", []string{"man", "--help"}},
		{"completion.bash.golden", []string{"completion", "bash"}},
		{"completion.zsh.golden", []string{"completion", "zsh"}},
		{"completion.fish.golden", []string{"completion", "fish"}},
		{"cgfreeze.1.golden", []string{"man"}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			code, out, errs := runCapture(t, tt.args...)
			if code != exitOK {
				t.Errorf("run(%q) = %d, want %d", tt.args, code, exitOK)
			}
			if errs != "" {
				t.Errorf("run(%q) wrote to stderr: %q", tt.args, errs)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run the tests with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("run(%q) stdout differs from %s (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", tt.args, path, out, want)
			}
		})
	}
}

// TestHelpAliases checks that every way of asking for help prints the same
// text as its golden form.
func TestHelpAliases(t *testing.T) {
	for _, tt := range []struct {
		args, same []string
	}{
		{[]string{"-h"}, []string{"--help"}},
		{[]string{"help"}, []string{"--help"}},
		{[]string{"freeze", "-h"}, []string{"freeze", "--help"}},
		{[]string{"thaw", "-h"}, []string{"thaw", "--help"}},
		{[]string{"status", "-h"}, []string{"status", "--help"}},
		{[]string{"help", "status"}, []string{"status", "--help"}},
		{[]string{"help", "completion"}, []string{"completion", "--help"}},
		// Flags first: the default command's help.
		{[]string{"--pid", "5", "--help"}, []string{"freeze", "--help"}},
		{[]string{"-o", "json", "-h"}, []string{"freeze", "--help"}},
		// Help wins over flags that would fail validation.
		{[]string{"status", "--pid", "0", "--help"}, []string{"status", "--help"}},
	} {
		code, out, errs := runCapture(t, tt.args...)
		_, want, _ := runCapture(t, tt.same...)
		if code != exitOK || out != want || errs != "" {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 0 and the output of %q", tt.args, code, out, errs, tt.same)
		}
	}
}

func TestHelpMentionsDocumentedFlags(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("docs", "usage.md"))
	if err != nil {
		t.Fatalf("docs/usage.md: %v", err)
	}
	// "| `-p, --pid int` | ..." rows of the flag tables.
	flagRow := regexp.MustCompile("(?m)^\\| `(?:-[a-z], )?(--[a-z-]+)")
	var flags []string
	for _, m := range flagRow.FindAllStringSubmatch(string(doc), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 10 {
		t.Fatalf("found only %d flags in docs/usage.md: %q", len(flags), flags)
	}
	only := map[string][]string{"--timeout": {"freeze", "thaw"}, "--duration": {"freeze"}, "--lease": {"freeze"},
		"--drop-connections": {"freeze"}, "--exit-code": {"status"}, "--drop-local-port": {"freeze"}, "--drop-remote-port": {"freeze"}, "--drop-direction": {"freeze"},
		"--start-timeout": {"freeze"}, "--heartbeat": {"freeze"}}
	for _, cmd := range []string{"freeze", "thaw", "status"} {
		_, help, _ := runCapture(t, cmd, "--help")
		for _, f := range flags {
			want := true
			if cmds, ok := only[f]; ok {
				want = false
				for _, c := range cmds {
					want = want || c == cmd
				}
			}
			if got := strings.Contains(help, f+" ") || strings.Contains(help, f+"["); got != want {
				t.Errorf("cgfreeze %s --help mentions %s: %v, want %v", cmd, f, got, want)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	proc := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want string // a substring of stderr
	}{
		{"unknown command", []string{"frezee"}, `unknown command "frezee"`},
		{"unknown command before flags", []string{"pause", "--pid", "5"}, `unknown command "pause"`},
		{"unknown flag", []string{"--bogus", "--proc", proc}, "unknown flag: --bogus"},
		{"unknown flag of a command", []string{"status", "--duration", "1s", "--proc", proc}, "unknown flag: --duration"},
		{"timeout is not a status flag", []string{"status", "--timeout", "5s", "--proc", proc}, "unknown flag: --timeout"},
		{"unknown shorthand", []string{"thaw", "-x", "--proc", proc}, "unknown shorthand flag: 'x'"},
		{"flag without a value", []string{"freeze", "--proc", proc, "--pid"}, "flag needs an argument"},
		{"non-numeric PID", []string{"--pid", "one", "--proc", proc}, "invalid argument"},
		{"cgroup version 3", []string{"--cgroup-version", "3", "--proc", proc}, "--cgroup-version must be 1 or 2, not 3"},
		{"negative cgroup version", []string{"status", "--cgroup-version", "-1", "--proc", proc}, "--cgroup-version must be 1 or 2, not -1"},
		{"output yaml", []string{"--output", "yaml", "--proc", proc}, `--output must be text or json, not "yaml"`},
		{"output yaml, short", []string{"status", "-o", "yaml", "--proc", proc}, `--output must be text or json, not "yaml"`},
		{"pid 0", []string{"--pid", "0", "--proc", proc}, "--pid must be a positive PID, not 0"},
		{"negative pid", []string{"thaw", "-p", "-4", "--proc", proc}, "--pid must be a positive PID, not -4"},
		{"timeout 0", []string{"--timeout", "0", "--proc", proc}, "--timeout must be positive"},
		{"thaw timeout 0", []string{"thaw", "--timeout", "0s", "--proc", proc}, "--timeout must be positive"},
		{"negative timeout", []string{"freeze", "--timeout", "-1s", "--proc", proc}, "--timeout must be positive"},
		{"negative duration", []string{"freeze", "-d", "-1s", "--proc", proc}, "--duration must not be negative"},
		{"bad duration", []string{"freeze", "--duration", "5", "--proc", proc}, "invalid argument"},
		{"log level", []string{"status", "--log-level", "loud", "--proc", proc}, `--log-level: unknown level "loud"`},
		{"log format", []string{"status", "--log-format", "xml", "--proc", proc}, `--log-format must be console or json, not "xml"`},
		{"stray argument", []string{"status", "extra", "--proc", proc}, `unexpected arguments ["extra"]`},
		{"command after flags", []string{"--proc", proc, "status"}, `unexpected arguments ["status"]`},
		{"version takes no flags", []string{"version", "--pid", "1"}, "unknown flag: --pid"},
		{"pid and container-id", []string{"--pid", "1", "--container-id", "abc", "--proc", proc}, "--pid and --container-id name the target twice: give one"},
		{"empty container-id", []string{"status", "--container-id", " ", "--proc", proc}, "--container-id must not be empty"},
		{"bad lease", []string{"--lease", "tcp", "--proc", proc}, `--lease must be stdin or parent, not "tcp"`},
		{"bad lease in a list", []string{"--lease", "stdin,tcp", "--proc", proc}, `--lease must be stdin or parent, not "tcp"`},
		{"lease is not a thaw flag", []string{"thaw", "--lease", "stdin", "--proc", proc}, "unknown flag: --lease"},
		{"version takes no arguments", []string{"version", "extra"}, `version takes no arguments, got ["extra"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCapture(t, tt.args...)
			if code != exitUsage {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, exitUsage, errs)
			}
			if out != "" {
				t.Errorf("run(%q) wrote to stdout: %q", tt.args, out)
			}
			if !strings.Contains(errs, tt.want) {
				t.Errorf("run(%q) stderr %q, want it to contain %q", tt.args, errs, tt.want)
			}
			if !strings.HasPrefix(errs, "cgfreeze: ") {
				t.Errorf("run(%q) stderr %q, want it to start with %q", tt.args, errs, "cgfreeze: ")
			}
		})
	}
}

func TestUsageErrorsAreAllReported(t *testing.T) {
	code, _, errs := runCapture(t, "freeze", "--pid", "0", "--output", "yaml", "--timeout", "0", "--proc", t.TempDir())
	if code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	want := `cgfreeze: --pid must be a positive PID, not 0; --timeout must be positive; --output must be text or json, not "yaml" (see cgfreeze freeze --help)` + "\n"
	if errs != want {
		t.Errorf("stderr\n  %q\nwant\n  %q", errs, want)
	}
}

func TestUnknownCommandHints(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // stderr, whole
	}{
		{[]string{"frezee"}, `unknown command "frezee": did you mean "freeze"? (see cgfreeze --help)`},
		{[]string{"stauts", "--pid", "5"}, `unknown command "stauts": did you mean "status"? (see cgfreeze --help)`},
		{[]string{"thw"}, `unknown command "thw": did you mean "thaw"? (see cgfreeze --help)`},
		{[]string{"vers"}, `unknown command "vers": did you mean "version"? (see cgfreeze --help)`},
		{[]string{"xyzzy"}, `unknown command "xyzzy" (see cgfreeze --help)`},
		{[]string{"4242"}, `unknown command "4242": did you mean --pid 4242? (cgfreeze --pid 4242; see cgfreeze --help)`},
		{[]string{"pause"}, `unknown command "pause": there is no pause/resume pair; "cgfreeze freeze" (the default command) freezes the target and holds it until Ctrl-C, SIGTERM or --duration, then thaws it (see cgfreeze --help)`},
		{[]string{"resume"}, `unknown command "resume": a freeze ends when its cgfreeze ends: Ctrl-C in its terminal, kill -TERM <its PID>, or --duration. "cgfreeze thaw" only undoes a freeze whose cgfreeze died, and refuses a live hold (see cgfreeze --help)`},
		{[]string{"--pdi", "3"}, `unknown flag: --pdi: did you mean --pid? (see cgfreeze freeze --help)`},
		{[]string{"status", "--outptu", "json"}, `unknown flag: --outptu: did you mean --output? (see cgfreeze status --help)`},
		{[]string{"freeze", "--drop-connections", "required", "--proc", "/nonexistent"}, `unexpected arguments ["required"]: did you mean --drop-connections=required? (its value is optional, so it needs the "=") (see cgfreeze freeze --help)`},
		{[]string{"freeze", "4242", "--proc", "/nonexistent"}, `unexpected arguments ["4242"]: did you mean --pid 4242? (see cgfreeze freeze --help)`},
		{[]string{"completion", "tcsh"}, `completion: unknown shell "tcsh": bash, zsh or fish (see cgfreeze completion --help)`},
		{[]string{"man", "extra"}, `man takes no arguments, got ["extra"] (see cgfreeze man --help)`},
		{[]string{"version", "-o", "yaml"}, `--output must be text or json, not "yaml" (see cgfreeze version --help)`},
	} {
		code, out, errs := runCapture(t, tt.args...)
		if want := "cgfreeze: " + tt.want + "\n"; code != exitUsage || out != "" || errs != want {
			t.Errorf("run(%q) = %d, stdout %q, stderr\n  %q\nwant %d, nothing,\n  %q", tt.args, code, out, errs, exitUsage, want)
		}
	}
}

// TestUsageErrorJSON: under -o json (however it is spelt) a usage error is
// also an error event with exit_code 2 on stdout.
func TestUsageErrorJSON(t *testing.T) {
	proc := t.TempDir()
	for _, args := range [][]string{
		{"frezee", "-o", "json"},
		{"--bogus", "-o", "json", "--proc", proc},
		{"status", "--output=json", "--pid", "0", "--proc", proc},
		{"thaw", "-ojson", "--timeout", "0", "--proc", proc},
		{"freeze", "-o=json", "4242", "--proc", proc},
		{"version", "-o", "json", "extra"},
	} {
		code, out, errs := runCapture(t, args...)
		if code != exitUsage {
			t.Errorf("run(%q) = %d, want %d", args, code, exitUsage)
		}
		var ev contract.Event
		if err := json.Unmarshal([]byte(unstamp(t, out)), &ev); err != nil || strings.Count(out, "\n") != 1 {
			t.Errorf("run(%q) stdout %q: want one JSON event (%v)", args, out, err)
			continue
		}
		msg, _ := strings.CutPrefix(strings.TrimSuffix(errs, "\n"), "cgfreeze: ")
		if ev.Event != contract.EventError || ev.ExitCode == nil || *ev.ExitCode != exitUsage || ev.Error != msg {
			t.Errorf("run(%q) event %+v, want an error event with exit_code 2 and the message %q", args, ev, msg)
		}
	}
	// Text mode: nothing on stdout.
	if _, out, _ := runCapture(t, "frezee", "-o", "text"); out != "" {
		t.Errorf("a usage error in text mode wrote %q on stdout", out)
	}
}

func TestVersionJSON(t *testing.T) {
	for _, args := range [][]string{{"version", "-o", "json"}, {"--version", "--output=json"}} {
		code, out, errs := runCapture(t, args...)
		var v contract.VersionInfo
		if err := json.Unmarshal([]byte(out), &v); err != nil || code != exitOK || errs != "" {
			t.Fatalf("run(%q) = %d, stdout %q, stderr %q (%v)", args, code, out, errs, err)
		}
		if v.Version != version || v.Schema != contract.Schema || !strings.HasPrefix(v.Go, "go") {
			t.Errorf("run(%q) = %+v, want version %q, schema %d and the Go version", args, v, version, contract.Schema)
		}
	}
	_, out, _ := runCapture(t, "--version")
	if _, want, _ := runCapture(t, "version"); out != want {
		t.Errorf("--version printed %q, version %q", out, want)
	}
}

// TestEditDistance: the hints' distance counts a swap as one edit.
func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"pid", "pid", 0}, {"pdi", "pid", 1}, {"frezee", "freeze", 1}, {"frezze", "freeze", 1}, {"fraaze", "freeze", 2}, {"thw", "thaw", 1}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestVersionHelp(t *testing.T) {
	code, out, errs := runCapture(t, "version", "--help")
	if code != exitOK || errs != "" || !strings.HasPrefix(out, "Usage: cgfreeze version [-o json]\n") {
		t.Errorf("run(version --help) = %d, stdout %q, stderr %q; want 0 and the usage on stdout", code, out, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, errs := runCapture(t, "version")
	if code != exitOK || errs != "" {
		t.Errorf("run(version) = %d, stderr %q; want 0, nothing", code, errs)
	}
	if !strings.HasPrefix(out, "cgfreeze "+version) || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("run(version) stdout %q, want one line starting with %q", out, "cgfreeze "+version)
	}
	if want := "cgfreeze " + buildVersion() + "\n"; out != want {
		t.Errorf("run(version) stdout %q, want %q", out, want)
	}
}

func TestMissingTarget(t *testing.T) {
	proc := t.TempDir() // a proc filesystem without processes
	const missing = "target process not found: process 999999999 does not exist in "

	t.Run("json", func(t *testing.T) {
		for _, cmd := range []string{"status", "thaw", "freeze"} {
			code, out, errs := runCapture(t, cmd, "--pid", "999999999", "-o", "json", "--proc", proc)
			if code != exitNoTarget {
				t.Errorf("%s: exit %d, want %d (stderr %q)", cmd, code, exitNoTarget, errs)
			}
			want := `{"event":"error","error":"` + missing + proc + ` (check --pid)","exit_code":3}` + "\n"
			if out = unstamp(t, out); out != want {
				t.Errorf("%s: stdout\n  %q\nwant\n  %q", cmd, out, want)
			}
			var ev map[string]any
			if err := json.Unmarshal([]byte(out), &ev); err != nil {
				t.Fatalf("%s: stdout is not one JSON object: %v", cmd, err)
			}
			if ev["event"] != "error" || ev["exit_code"] != float64(3) {
				t.Errorf("%s: event %v, want event error with exit_code 3", cmd, ev)
			}
			if !strings.Contains(errs, missing) || !strings.Contains(errs, "exit_code=3") {
				t.Errorf("%s: stderr %q, want the error logged with exit_code=3", cmd, errs)
			}
		}
	})
	t.Run("text", func(t *testing.T) {
		code, out, errs := runCapture(t, "status", "-p", "999999999", "--proc", proc)
		if code != exitNoTarget {
			t.Errorf("exit %d, want %d", code, exitNoTarget)
		}
		if out != "" {
			t.Errorf("stdout %q, want nothing: errors go to the log only in text mode", out)
		}
		if !strings.Contains(errs, " ERR "+missing+proc+" (check --pid) exit_code=3") {
			t.Errorf("stderr %q, want the error in the console log", errs)
		}
	})
	t.Run("json log", func(t *testing.T) {
		code, out, errs := runCapture(t, "status", "--pid", "999999999", "--proc", proc, "--log-format", "json")
		if code != exitNoTarget || out != "" {
			t.Errorf("exit %d, stdout %q; want %d, nothing", code, out, exitNoTarget)
		}
		var line struct {
			Level    string `json:"level"`
			ExitCode int    `json:"exit_code"`
			Message  string `json:"message"`
			Time     string `json:"time"`
		}
		if err := json.Unmarshal([]byte(errs), &line); err != nil {
			t.Fatalf("stderr %q is not one JSON log line: %v", errs, err)
		}
		if line.Level != "error" || line.ExitCode != 3 || line.Message != missing+proc+" (check --pid)" || line.Time == "" {
			t.Errorf("log line %+v, want level error, exit_code 3 and the message", line)
		}
	})
	t.Run("log disabled", func(t *testing.T) {
		code, out, errs := runCapture(t, "status", "--pid", "999999999", "--proc", proc, "--log-level", "disabled")
		if code != exitNoTarget || out != "" || errs != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want %d and no output", code, out, errs, exitNoTarget)
		}
	})
}

func TestFailExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"unexpected", errors.New("boom"), exitError, "boom"},
		{"not found", fmt.Errorf("%w: process 4 does not exist in /proc (check --pid)", freezer.ErrTargetNotFound), exitNoTarget,
			"target process not found: process 4 does not exist in /proc (check --pid)"},
		{"ambiguous container", fmt.Errorf("%w: \"ab\" matches 2 containers", freezer.ErrAmbiguousContainer), exitUsage,
			`ambiguous container ID: "ab" matches 2 containers`},
		{"unsafe", fmt.Errorf("%w: cgroup / holds cgfreeze itself", freezer.ErrUnsafeTarget), contract.ExitUnsafeTarget,
			"target refused: cgroup / holds cgfreeze itself"},
		{"not privileged", fmt.Errorf("mount cgroup2 (): %w (operation not permitted)", freezer.ErrNotPrivileged), contract.ExitNotPrivileged,
			"mount cgroup2 (): not privileged (operation not permitted): run privileged: kubectl debug --profile=sysadmin, docker run --privileged, or as root on the node"},
		{"no freezer", fmt.Errorf("%w: / has no cgroup.freeze", freezer.ErrNoFreezer), contract.ExitNoFreezer,
			"no cgroup freezer: / has no cgroup.freeze"},
		{"read-only", fmt.Errorf("%w: the cgroup mount refuses writes", freezer.ErrReadOnly), contract.ExitReadOnly,
			"read-only cgroup filesystem: the cgroup mount refuses writes: run privileged so that cgfreeze can make its own mount (kubectl debug --profile=sysadmin)"},
		{"already frozen", fmt.Errorf("%w by runc pause", freezer.ErrAlreadyFrozen), contract.ExitAlreadyFrozen,
			"target already frozen by runc pause"},
		{"freeze failed", fmt.Errorf("%w: timed out", freezer.ErrFreezeFailed), contract.ExitFreezeFailed,
			"freeze did not complete: timed out: the freeze was rolled back; the target runs as before"},
		{"thaw failed", fmt.Errorf("%w: busy", freezer.ErrThawFailed), contract.ExitThawFailed,
			"thaw did not complete: busy: the target may still be frozen (a holding cgfreeze hands it to its watchdog): run `cgfreeze thaw` with the same flags"},
		// A freeze that failed and whose rollback failed too leaves the
		// target frozen: the thaw failure decides.
		{"rollback failed", fmt.Errorf("%w: timed out; the rollback failed too: %w", freezer.ErrFreezeFailed, freezer.ErrThawFailed), contract.ExitThawFailed,
			"freeze did not complete: timed out; the rollback failed too: thaw did not complete: the target may still be frozen (a holding cgfreeze hands it to its watchdog): run `cgfreeze thaw` with the same flags"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, logs bytes.Buffer
			ev := agent.NewWriter(&out, true)
			code := fail(ev, zerolog.New(&logs), tt.err)
			ev.Close(time.Second)
			if code != tt.code {
				t.Errorf("fail(%v) = %d, want %d", tt.err, code, tt.code)
			}
			want := fmt.Sprintf(`{"event":"error","error":%q,"exit_code":%d}`+"\n", tt.msg, tt.code)
			// encoding/json escapes no characters in these messages
			// that %q would write differently.
			if got := unstamp(t, out.String()); got != want {
				t.Errorf("fail(%v) event\n  %s\nwant\n  %s", tt.err, got, want)
			}
			var line struct {
				Level    string `json:"level"`
				ExitCode int    `json:"exit_code"`
				Message  string `json:"message"`
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			if line.Level != "error" || line.ExitCode != tt.code || line.Message != tt.msg {
				t.Errorf("fail(%v) logged %+v, want level error, exit_code %d, message %q", tt.err, line, tt.code, tt.msg)
			}
		})
	}
}

// TestMissingContainer: --container-id that matches no visible process's
// cgroup exits 3 with what it saw (nothing, in an empty proc).
func TestMissingContainer(t *testing.T) {
	proc := t.TempDir()
	for _, cmd := range []string{"status", "thaw", "freeze"} {
		code, out, errs := runCapture(t, cmd, "--container-id", "containerd://0123abc", "-o", "json", "--cgroup-version", "2", "--proc", proc)
		if code != exitNoTarget {
			t.Errorf("%s: exit %d, want %d (stderr %q)", cmd, code, exitNoTarget, errs)
		}
		want := `{"event":"error","error":"target process not found: no container with ID \"containerd://0123abc\" among the processes in ` + proc + ` (cgroup v2); containers seen: none","exit_code":3}` + "\n"
		if out = unstamp(t, out); out != want {
			t.Errorf("%s: stdout\n  %q\nwant\n  %q", cmd, out, want)
		}
	}
}

// The holder gets every freeze flag of its supervisor: a flag added to
// freeze and forgotten in holderArgs fails here.
func TestHolderArgsRoundTrip(t *testing.T) {
	args := []string{"--cgroup-version", "2", "-d", "90s", "--timeout", "7s", "-o", "json",
		"--log-level", "debug", "--log-format", "json", "--proc", "/p", "--sys-cgroup", "/s",
		"--cgroup-mount", "/m", "--lease", "stdin,parent", "--start-timeout", "45s", "--heartbeat", "30s",
		"--drop-connections=required", "--drop-local-port", "80,8000-8100", "--drop-remote-port", "5672", "--drop-direction", "outbound"}
	var stdout, stderr strings.Builder
	sup, code, ok := parseFlags("freeze", args, &stdout, &stderr)
	if !ok {
		t.Fatalf("parseFlags(freeze) = %d: %s", code, stderr.String())
	}
	sup.pid = 4242 // as the supervisor resolved it
	hargs := holderArgs(sup)
	if hargs[0] != holdCommand {
		t.Fatalf("holderArgs starts with %q, want %q", hargs[0], holdCommand)
	}
	hold, code, ok := parseFlags(holdCommand, hargs[1:], &stdout, &stderr)
	if !ok {
		t.Fatalf("parseFlags(%q) = %d: %s", hargs, code, stderr.String())
	}
	want := sup
	want.cmd, want.leases, want.pidSet = holdCommand, []string{agent.LeaseStdin}, true
	if !reflect.DeepEqual(hold, want) {
		t.Errorf("the holder's config\n  %+v\nwant\n  %+v", hold, want)
	}
	// Every flag of freeze but --container-id (the holder gets the
	// resolved --pid) is set on the holder's command line.
	for _, f := range flagNames(t, "freeze") {
		if f == "container-id" {
			continue
		}
		if !slices.ContainsFunc(hargs, func(a string) bool { return strings.HasPrefix(a, "--"+f+"=") }) {
			t.Errorf("holderArgs does not pass --%s: %q", f, hargs)
		}
	}
}

// flagNames lists the long flags of a command from its help.
func flagNames(t *testing.T, cmd string) []string {
	t.Helper()
	_, help, _ := runCapture(t, cmd, "--help")
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		out = append(out, m[1])
	}
	if len(out) < 10 {
		t.Fatalf("found only %d flags in the help of %s", len(out), cmd)
	}
	return out
}
