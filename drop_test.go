package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cgfreeze/cgfreeze/conns"
	"github.com/rs/zerolog"
)

func TestDropFlags(t *testing.T) {
	proc := t.TempDir()
	for _, tt := range []struct {
		args []string
		want dropConfig
	}{
		{nil, dropConfig{}},
		{[]string{"--drop-connections"}, dropConfig{mode: dropOn}},
		{[]string{"--drop-connections=required"}, dropConfig{mode: dropRequired}},
		{[]string{"--drop-connections=off"}, dropConfig{}},
		{[]string{"--drop-connections", "--drop-remote-port", "5672,8000-8001", "--drop-direction", "outbound"},
			dropConfig{mode: dropOn, filter: conns.Filter{RemotePorts: []conns.PortRange{{Low: 5672, High: 5672}, {Low: 8000, High: 8001}}, Direction: conns.Outbound},
				remotePorts: "5672,8000-8001", direction: "outbound"}},
		{[]string{"--drop-connections=on", "--drop-local-port", "80", "--drop-direction", "both"},
			dropConfig{mode: dropOn, filter: conns.Filter{LocalPorts: []conns.PortRange{{Low: 80, High: 80}}}, localPorts: "80", direction: "both"}},
	} {
		var out, errs bytes.Buffer
		c, code, ok := parseFlags("freeze", append(tt.args, "--proc", proc), &out, &errs)
		if !ok || code != exitOK {
			t.Errorf("parseFlags(%q) = %d: %s", tt.args, code, errs.String())
			continue
		}
		if !reflect.DeepEqual(c.drop, tt.want) {
			t.Errorf("parseFlags(%q).drop = %+v, want %+v", tt.args, c.drop, tt.want)
		}
	}
}

func TestDropUsageErrors(t *testing.T) {
	proc := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--drop-connections=maybe"}, `invalid argument "maybe" for "--drop-connections" flag: must be on, required or off, not "maybe"`},
		{[]string{"--drop-remote-port", "5672"}, "--drop-remote-port needs --drop-connections"},
		{[]string{"--drop-direction", "inbound"}, "--drop-direction needs --drop-connections"},
		{[]string{"--drop-connections", "--drop-local-port", "http"}, `--drop-local-port: port list "http": "http" is not a port (1 to 65535)`},
		{[]string{"--drop-connections", "--drop-remote-port", "9-1"}, `--drop-remote-port: port list "9-1": range 9-1 ends before it starts`},
		{[]string{"--drop-connections", "--drop-direction", "in"}, `--drop-direction must be inbound, outbound or both, not "in"`},
		{[]string{"thaw", "--drop-connections"}, "unknown flag: --drop-connections"},
		{[]string{"status", "--drop-local-port", "80"}, "unknown flag: --drop-local-port"},
	} {
		code, out, errs := runCapture(t, append(tt.args, "--proc", proc)...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.want) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d and %q", tt.args, code, out, errs, exitUsage, tt.want)
		}
	}
}

func TestEmitConnectionsDropped(t *testing.T) {
	count, none := 2, 0
	cs := []connection{
		{Local: "127.0.0.1:8080", Remote: "127.0.0.1:41234", PID: 12, Direction: "inbound"},
		{Local: "[::ffff:10.0.0.2]:40000", Remote: "[::ffff:10.0.0.9]:5672", PID: 13, Direction: "outbound"},
	}
	e := event{Event: "connections_dropped", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", ElapsedMS: 1.5, Count: &count, Connections: &cs}
	var out bytes.Buffer
	(&emitter{out: &out, json: true}).emit(e)
	want := `{"event":"connections_dropped","pid":1,"cgroup":"/","version":2,"strategy":"subtree","elapsed_ms":1.5,"count":2,"connections":[` +
		`{"local":"127.0.0.1:8080","remote":"127.0.0.1:41234","pid":12,"direction":"inbound"},` +
		`{"local":"[::ffff:10.0.0.2]:40000","remote":"[::ffff:10.0.0.9]:5672","pid":13,"direction":"outbound"}]}` + "\n"
	if out.String() != want {
		t.Errorf("JSON\n  %s\nwant\n  %s", out.String(), want)
	}
	out.Reset()
	(&emitter{out: &out}).emit(e)
	want = "connections_dropped cgroup=/ connections=127.0.0.1:8080->127.0.0.1:41234/12,[::ffff:10.0.0.2]:40000->[::ffff:10.0.0.9]:5672/13 count=2 elapsed_ms=1.5 pid=1 strategy=subtree version=2\n"
	if out.String() != want {
		t.Errorf("text\n  %s\nwant\n  %s", out.String(), want)
	}
	// Nothing dropped still says so, with an empty list.
	empty := []connection{}
	e = event{Event: "connections_dropped", PID: 1, Count: &none, Connections: &empty, Warning: "no CAP_NET_ADMIN", Hidden: 2, Filtered: 1}
	out.Reset()
	(&emitter{out: &out, json: true}).emit(e)
	want = `{"event":"connections_dropped","pid":1,"count":0,"connections":[],"filtered":1,"hidden":2,"warning":"no CAP_NET_ADMIN"}` + "\n"
	if out.String() != want {
		t.Errorf("JSON\n  %s\nwant\n  %s", out.String(), want)
	}
	out.Reset()
	(&emitter{out: &out}).emit(e)
	want = `connections_dropped count=0 filtered=1 hidden=2 pid=1 warning="no CAP_NET_ADMIN"` + "\n"
	if out.String() != want {
		t.Errorf("text\n  %s\nwant\n  %s", out.String(), want)
	}
}

func TestExplainDrop(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("abort x: %w (operation not supported)", conns.ErrNotSupported), "this kernel cannot abort sockets (it is built without CONFIG_INET_DIAG_DESTROY): nothing was dropped"},
		{fmt.Errorf("abort x: %w (operation not permitted)", conns.ErrNotPermitted), "cgfreeze lacks CAP_NET_ADMIN over the target's network namespace"},
		{errors.Join(errors.New("a"), errors.New("b")), "a; b"},
	} {
		if got := explainDrop(tt.err); !strings.HasPrefix(got, tt.want) {
			t.Errorf("explainDrop(%v) = %q, want it to start with %q", tt.err, got, tt.want)
		}
	}
}

func TestFailDropExitCode(t *testing.T) {
	var out, logs bytes.Buffer
	err := fmt.Errorf("%w (--drop-connections=required, 0 dropped): no CAP_NET_ADMIN", errDropFailed)
	if code := fail(&emitter{out: &out, json: true}, zerolog.New(&logs), err); code != exitDropFailed {
		t.Errorf("fail(%v) = %d, want %d", err, code, exitDropFailed)
	}
	if !strings.Contains(out.String(), "the target was thawed and runs as before") {
		t.Errorf("error event %s: no hint", out.String())
	}
}

// TestEventFieldsDocumented: every field an event can carry has a row in
// the field table of docs/usage.md.
func TestEventFieldsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("docs", "usage.md"))
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(string(doc), "\n| `"+name+"` |") {
			t.Errorf("event field %q has no row in the field table of docs/usage.md", name)
		}
	}
}
