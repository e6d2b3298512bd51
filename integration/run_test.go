package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// event is one JSON line of cgfreeze's stdout (docs/usage.md).
type event struct {
	Event     string   `json:"event"`
	Time      string   `json:"time"`
	Schema    *int     `json:"schema"`
	PID       int      `json:"pid"`
	Cgroup    string   `json:"cgroup"`
	Version   int      `json:"version"`
	Strategy  string   `json:"strategy"`
	Processes *int     `json:"processes"`
	ElapsedMS *float64 `json:"elapsed_ms"`
	Reason    string   `json:"reason"`
	Signal    string   `json:"signal"`
	HeldMS    *float64 `json:"held_ms"`
	State     string   `json:"state"`
	FrozenBy  string   `json:"frozen_by"`
	Holder    int      `json:"holder"`
	Namespace string   `json:"namespace"`
	Held      *bool    `json:"held"`
	// repaired, violation
	What      string   `json:"what"`
	LatencyMS *float64 `json:"latency_ms"`
	// connections_dropped
	Count       *int        `json:"count"`
	Connections []connEntry `json:"connections"`
	Shared      []connEntry `json:"shared"`
	Filtered    int         `json:"filtered"`
	Hidden      int         `json:"hidden"`
	Warning     string      `json:"warning"`
	Error       string      `json:"error"`
	ExitCode    *int        `json:"exit_code"`

	ContainerID string `json:"container_id"`

	raw string
	bad string // why the line is not a valid event
}

// documentedFields are the fields docs/usage.md lists.
var documentedFields = []string{"event", "time", "schema", "pid", "container_id", "cgroup", "version", "strategy", "processes", "elapsed_ms",
	"reason", "signal", "held_ms", "state", "frozen_by", "holder", "namespace", "held", "what", "latency_ms", "error", "exit_code",
	"count", "connections", "shared", "filtered", "hidden", "warning"}

// connEntry is one connection in a connections_dropped event.
type connEntry struct {
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	PID       int    `json:"pid"`
	Direction string `json:"direction"`
}

// numericFields are the fields that text mode prints as numbers.
var numericFields = []string{"schema", "pid", "version", "processes", "elapsed_ms", "held_ms", "holder", "exit_code", "latency_ms", "count", "filtered", "hidden"}

// parseTextEvent parses one line of text mode (docs/usage.md): the event's
// name, then key=value pairs, a value Go-quoted when it holds a space, a
// quote, "=" or a backslash. It checks what parseEvent checks.
func parseTextEvent(line string) event {
	name, rest, _ := strings.Cut(line, " ")
	fields := map[string]any{"event": name}
	for rest != "" {
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" || strings.Contains(k, " ") {
			return event{raw: line, bad: fmt.Sprintf("not key=value at %q", rest)}
		}
		rest = v
		if strings.HasPrefix(v, "\"") {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				return event{raw: line, bad: fmt.Sprintf("bad quoted value at %q: %v", v, err)}
			}
			v, _ = strconv.Unquote(q)
			rest = strings.TrimPrefix(rest[len(q):], " ")
		} else {
			v, rest, _ = strings.Cut(v, " ")
		}
		if slices.Contains(numericFields, k) {
			fields[k] = json.Number(v)
		} else {
			fields[k] = v
		}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return event{raw: line, bad: err.Error()}
	}
	e := parseEvent(string(b))
	e.raw = line
	return e
}

func parseEvent(line string) event {
	e := event{raw: line}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		e.bad = fmt.Sprintf("not a JSON object: %v", err)
		return e
	}
	var unknown []string
	for k := range fields {
		if !slices.Contains(documentedFields, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		e.bad = fmt.Sprintf("undocumented fields %q", unknown)
	}
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		e.bad = fmt.Sprintf("fields of the wrong type: %v", err)
	}
	return e
}

func (e event) String() string { return e.raw }

// run is one cgfreeze process (possibly behind a wrapper: sh, unshare,
// nsenter).
type run struct {
	h      *harness
	desc   string
	cmd    *exec.Cmd
	events chan event // every stdout line; closed at EOF
	seen   []string   // the lines read so far (by the test goroutine)
	stderr string     // a file
	exited chan struct{}
	pid    int // the cgfreeze process itself, once found
}

// startCgfreeze starts argv (the cgfreeze binary, or a wrapper that ends
// up exec'ing it) with stdout read line by line.
func (h *harness) startCgfreeze(desc string, argv []string) *run {
	h.t.Helper()
	return h.startCgfreezeStdin(desc, argv, nil)
}

// startCgfreezeStdin is startCgfreeze with stdin read from the given file
// (nil: /dev/null).
func (h *harness) startCgfreezeStdin(desc string, argv []string, stdin *os.File) *run {
	h.t.Helper()
	r := &run{h: h, desc: desc, events: make(chan event, 256), exited: make(chan struct{})}
	r.stderr = filepath.Join(h.dir, fmt.Sprintf("cgfreeze%d.stderr", len(h.runs)))
	errf, err := os.Create(r.stderr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = errf.Close() }()
	pr, pw, err := os.Pipe()
	if err != nil {
		h.t.Fatal(err)
	}
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Stdout = pw
	if stdin != nil {
		r.cmd.Stdin = stdin
	}
	r.cmd.Stderr = errf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = r.cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = pr.Close()
		h.t.Fatalf("start %s: %v", desc, err)
	}
	h.runs = append(h.runs, r)
	go func() {
		defer close(r.events)
		defer func() { _ = pr.Close() }()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			// JSON with -o json; text mode otherwise (the image's
			// entrypoint run with no arguments).
			if line := sc.Text(); strings.HasPrefix(line, "{") {
				r.events <- parseEvent(line)
			} else {
				r.events <- parseTextEvent(line)
			}
		}
	}()
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	return r
}

func (r *run) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// describe says what is known of the run, for a failure message.
func (r *run) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n  command: %q\n", r.desc, r.cmd.Args)
	if r.running() {
		fmt.Fprintf(&b, "  still running (PID %d)\n", r.cmd.Process.Pid)
	} else {
		fmt.Fprintf(&b, "  exited: %v\n", r.cmd.ProcessState)
	}
	fmt.Fprintf(&b, "  events so far: %q\n", r.seen)
	errb, _ := os.ReadFile(r.stderr)
	fmt.Fprintf(&b, "  stderr: %s", tail(string(errb), 4000))
	return b.String()
}

// next returns the next event, or ok=false at EOF or when d passes.
func (r *run) next(d time.Duration) (event, bool, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case e, ok := <-r.events:
		if ok {
			r.seen = append(r.seen, e.raw)
		}
		return e, ok, false
	case <-timer.C:
		return event{}, false, true
	}
}

// nextEvent returns the next event, whatever it is.
func (r *run) nextEvent() event {
	r.h.t.Helper()
	d := eventDeadline
	e, ok, timedOut := r.next(d)
	switch {
	case timedOut:
		r.h.t.Fatalf("no event after %v from %s", d, r.describe())
	case !ok:
		<-r.exitedWithin(2 * time.Second)
		r.h.t.Fatalf("stdout ended without an event: %s", r.describe())
	case e.bad != "":
		r.h.t.Fatalf("malformed event %q (%s) from %s", e.raw, e.bad, r.describe())
	}
	return e
}

// waitEvent returns the next event, which must be name. For "frozen" it
// also reads the holding event that must follow it (event contract schema
// 2: frozen carries no count, holding does) and returns frozen with
// holding's processes.
func (r *run) waitEvent(name string) event {
	r.h.t.Helper()
	if name == "frozen" {
		e := r.waitOne(name)
		if e.Processes != nil {
			r.h.t.Fatalf("frozen carries processes (schema 2 moved them to holding): %s", r.describe())
		}
		h := r.waitOne("holding")
		if h.Processes == nil || h.Cgroup != e.Cgroup || h.PID != e.PID {
			r.h.t.Fatalf("holding %q does not follow frozen %q with the count: %s", h.raw, e.raw, r.describe())
		}
		e.Processes = h.Processes
		return e
	}
	return r.waitOne(name)
}

// waitOne returns the next event, which must be name.
func (r *run) waitOne(name string) event {
	r.h.t.Helper()
	d := eventDeadline
	e, ok, timedOut := r.next(d)
	switch {
	case timedOut:
		r.h.t.Fatalf("no %q event after %v from %s", name, d, r.describe())
	case !ok:
		<-r.exitedWithin(2 * time.Second)
		r.h.t.Fatalf("stdout ended without a %q event: %s", name, r.describe())
	case e.bad != "":
		r.h.t.Fatalf("malformed event %q (%s) from %s", e.raw, e.bad, r.describe())
	case e.Event != name:
		r.h.t.Fatalf("got a %q event where a %q event was due: %s", e.Event, name, r.describe())
	}
	return e
}

func (r *run) exitedWithin(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		select {
		case <-r.exited:
		case <-time.After(d):
		}
		close(ch)
	}()
	return ch
}

// wait waits for the exit, requires that stdout has no more events, and
// returns the exit code.
func (r *run) wait() int {
	r.h.t.Helper()
	d := exitDeadline
	select {
	case <-r.exited:
	case <-time.After(d):
		r.h.t.Fatalf("still running %v after it should have exited: %s", d, r.describe())
	}
	for {
		e, ok, timedOut := r.next(2 * time.Second)
		if timedOut {
			r.h.t.Fatalf("stdout stays open after the exit: %s", r.describe())
		}
		if !ok {
			break
		}
		r.h.t.Errorf("unexpected event %q: %s", e.raw, r.describe())
	}
	st := r.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.h.t.Fatalf("killed by %v: %s", ws.Signal(), r.describe())
	}
	return st.ExitCode()
}

// requireRefusal waits for one error event with the exit code, then the
// exit with it.
func (r *run) requireRefusal(code int) event {
	r.h.t.Helper()
	e := r.waitEvent("error")
	if e.ExitCode == nil || *e.ExitCode != code {
		r.h.t.Errorf("error event %q: exit_code is not %d", e.raw, code)
	}
	if e.Error == "" {
		r.h.t.Errorf("error event %q has no error message", e.raw)
	}
	if got := r.wait(); got != code {
		r.h.t.Errorf("exit code %d, want %d: %s", got, code, r.describe())
	}
	return e
}

// cgfreezePid finds the cgfreeze process: the started process itself once
// it has exec'd cgfreeze, or a descendant (behind nsenter, which forks).
func (r *run) cgfreezePid() int {
	r.h.t.Helper()
	if r.pid != 0 {
		return r.pid
	}
	deadline := time.Now().Add(startDeadline)
	for time.Now().Before(deadline) {
		root := r.cmd.Process.Pid
		for _, pid := range append([]int{root}, descendants(root)...) {
			if isCgfreeze(pid) && !isHolder(pid) {
				r.pid = pid
				return pid
			}
		}
		if !r.running() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.h.t.Fatalf("no cgfreeze process found: %s", r.describe())
	return 0
}

// isHolder tells whether pid is the holder of a freeze, the child that
// cgfreeze (its supervisor, the watchdog) starts.
func isHolder(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "\x00__hold\x00")
}

// holderProcess finds the holder below cgfreeze (its supervisor).
func (r *run) holderProcess() int {
	r.h.t.Helper()
	supervisor := r.cgfreezePid()
	deadline := time.Now().Add(startDeadline)
	for time.Now().Before(deadline) {
		for _, pid := range descendants(supervisor) {
			if isHolder(pid) {
				return pid
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.h.t.Fatalf("no holder below cgfreeze (PID %d): %s", supervisor, r.describe())
	return 0
}

// waitGone waits until process pid has ended.
func (h *harness) waitGone(what string, pid int) {
	h.t.Helper()
	deadline := time.Now().Add(exitDeadline)
	for {
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			return
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return // exited; its parent has not reaped it yet
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s (PID %d) still runs after %v", what, pid, exitDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *run) signal(sig syscall.Signal) {
	r.h.t.Helper()
	if err := unix.Kill(r.cgfreezePid(), sig); err != nil {
		r.h.t.Fatalf("send %v to cgfreeze (PID %d): %v", sig, r.pid, err)
	}
}
