package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/cgfreeze/cgfreeze/contract"
	"reflect"
	"strings"
	"testing"
	"time"

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
		{[]string{"--drop-connections=required"}, dropConfig{mode: agent.DropRequired}},
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
	err := fmt.Errorf("%w (the drop is required; 0 dropped): no CAP_NET_ADMIN", agent.ErrDropFailed)
	ev := agent.NewWriter(&out, true)
	code := fail(ev, zerolog.New(&logs), err)
	ev.Close(time.Second)
	if code != contract.ExitDropFailed {
		t.Errorf("fail(%v) = %d, want %d", err, code, contract.ExitDropFailed)
	}
	if !strings.Contains(out.String(), "the target was thawed and runs as before") {
		t.Errorf("error event %s: no hint", out.String())
	}
}
