package agent

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
)

func intp(n int) *int { return &n }

func TestEmitText(t *testing.T) {
	for _, tt := range []struct {
		name string
		e    contract.Event
		want string
	}{
		{
			name: "frozen",
			e:    contract.Event{Event: "frozen", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", Processes: intp(3), ElapsedMS: 4.1},
			want: "frozen cgroup=/ elapsed_ms=4.1 pid=1 processes=3 strategy=subtree version=2\n",
		},
		{
			name: "thawed by a signal",
			e: contract.Event{Event: "thawed", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", Processes: intp(3),
				ElapsedMS: 2.2, Reason: "signal", Signal: "interrupt", HeldMS: 10423.7},
			want: "thawed cgroup=/ elapsed_ms=2.2 held_ms=10423.7 pid=1 processes=3 reason=signal signal=interrupt strategy=subtree version=2\n",
		},
		{
			name: "thawed after the duration",
			e: contract.Event{Event: "thawed", PID: 42, Cgroup: "/docker/abc", Version: 1, Strategy: "freezer", Processes: intp(1),
				ElapsedMS: 0.04, Reason: "duration", HeldMS: 60000.2},
			want: "thawed cgroup=/docker/abc elapsed_ms=0.04 held_ms=60000.2 pid=42 processes=1 reason=duration strategy=freezer version=1\n",
		},
		{
			name: "status thawed, no processes",
			e: contract.Event{Event: "status", PID: 7, Cgroup: "/kubepods/pod1/ctr", Version: 2, Strategy: "direct", Processes: intp(0),
				State: "thawed", Namespace: "own"},
			want: "status cgroup=/kubepods/pod1/ctr namespace=own pid=7 processes=0 state=thawed strategy=direct version=2\n",
		},
		{
			name: "status frozen by cgfreeze",
			e: contract.Event{Event: "status", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", Processes: intp(5),
				State: "frozen", FrozenBy: "cgfreeze", Holder: 4242, Namespace: "target"},
			want: "status cgroup=/ frozen_by=cgfreeze holder=4242 namespace=target pid=1 processes=5 state=frozen strategy=subtree version=2\n",
		},
		{
			name: "recovered",
			e: contract.Event{Event: "recovered", PID: 1, Cgroup: "/", Version: 1, Strategy: "freezer", State: "thawed",
				Holder: 99, ElapsedMS: 12.345},
			want: "recovered cgroup=/ elapsed_ms=12.345 holder=99 pid=1 state=thawed strategy=freezer version=1\n",
		},
		{
			name: "nothing to thaw",
			e:    contract.Event{Event: "nothing_to_thaw", PID: 1, Cgroup: "/", Version: 2, Strategy: "direct", State: "thawed", ElapsedMS: 0.5},
			want: "nothing_to_thaw cgroup=/ elapsed_ms=0.5 pid=1 state=thawed strategy=direct version=2\n",
		},
		{
			name: "error is not printed in text mode",
			e:    contract.Event{Event: "error", Error: "boom", ExitCode: intp(1)},
			want: "",
		},
		{
			name: "a reason with quotes and spaces is quoted",
			e:    contract.Event{Event: "thawed", PID: 3, Reason: `said "stop" now`},
			want: `thawed pid=3 reason="said \"stop\" now"` + "\n",
		},
		{
			name: "cgroup with a space is quoted",
			e:    contract.Event{Event: "status", PID: 7, Cgroup: "/my pod", Version: 2, Strategy: "direct", Processes: intp(1), State: "thawed"},
			want: `status cgroup="/my pod" pid=7 processes=1 state=thawed strategy=direct version=2` + "\n",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			out.Write(Format(tt.e, false))
			if out.String() != tt.want {
				t.Errorf("emit(%+v) =\n  %q\nwant\n  %q", tt.e, out.String(), tt.want)
			}
		})
	}
}

func TestEmitJSON(t *testing.T) {
	for _, tt := range []struct {
		name string
		e    contract.Event
		want string
	}{
		{
			name: "frozen",
			e:    contract.Event{Event: "frozen", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", Processes: intp(3), ElapsedMS: 4.1},
			want: `{"event":"frozen","pid":1,"cgroup":"/","version":2,"strategy":"subtree","processes":3,"elapsed_ms":4.1}`,
		},
		{
			name: "thawed",
			e: contract.Event{Event: "thawed", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", Processes: intp(3),
				ElapsedMS: 2.2, Reason: "signal", Signal: "interrupt", HeldMS: 10423.7},
			want: `{"event":"thawed","pid":1,"cgroup":"/","version":2,"strategy":"subtree","processes":3,"elapsed_ms":2.2,"reason":"signal","signal":"interrupt","held_ms":10423.7}`,
		},
		{
			name: "status with zero processes keeps the count",
			e: contract.Event{Event: "status", PID: 7, Cgroup: "/x", Version: 1, Strategy: "freezer", Processes: intp(0),
				State: "frozen", FrozenBy: "other", Namespace: "own"},
			want: `{"event":"status","pid":7,"cgroup":"/x","version":1,"strategy":"freezer","processes":0,"state":"frozen","frozen_by":"other","namespace":"own"}`,
		},
		{
			name: "error",
			e:    contract.Event{Event: "error", Error: `target refused: cgroup "/" <root>`, ExitCode: intp(4)},
			want: `{"event":"error","error":"target refused: cgroup \"/\" \u003croot\u003e","exit_code":4}`,
		},
		{
			name: "exit code 0 is still printed",
			e:    contract.Event{Event: "error", Error: "x", ExitCode: intp(0)},
			want: `{"event":"error","error":"x","exit_code":0}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			out.Write(Format(tt.e, true))
			if out.String() != tt.want+"\n" {
				t.Errorf("emit(%+v) =\n  %s\nwant\n  %s", tt.e, out.String(), tt.want)
			}
		})
	}
}

// TestEmitJSONNoJSONForm: an event with a float that JSON cannot carry
// (NaN, an infinity) is an empty line, as it was when json.Marshal's
// error left nothing to write.
func TestEmitJSONNoJSONForm(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := string(Format(contract.Event{Event: "thawed", HeldMS: f}, true)); got != "\n" {
			t.Errorf("Format with held_ms %v = %q, want an empty line", f, got)
		}
	}
}

func TestMS(t *testing.T) {
	for _, tt := range []struct {
		d    string
		want float64
	}{
		{"0s", 0},
		{"1ms", 1},
		{"4.1ms", 4.1},
		{"1500us", 1.5},
		{"999ns", 0},
		{"10.4237s", 10423.7},
	} {
		d, err := time.ParseDuration(tt.d)
		if err != nil {
			t.Fatal(err)
		}
		if got := MS(d); got != tt.want {
			t.Errorf("MS(%s) = %v, want %v", tt.d, got, tt.want)
		}
	}
}

func TestEmitConnectionsDropped(t *testing.T) {
	count, none := 2, 0
	cs := []contract.Connection{
		{Local: "127.0.0.1:8080", Remote: "127.0.0.1:41234", PID: 12, Direction: "inbound"},
		{Local: "[::ffff:10.0.0.2]:40000", Remote: "[::ffff:10.0.0.9]:5672", PID: 13, Direction: "outbound"},
	}
	e := contract.Event{Event: "connections_dropped", PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree", ElapsedMS: 1.5, Count: &count, Connections: &cs}
	var out bytes.Buffer
	out.Write(Format(e, true))
	want := `{"event":"connections_dropped","pid":1,"cgroup":"/","version":2,"strategy":"subtree","elapsed_ms":1.5,"count":2,"connections":[` +
		`{"local":"127.0.0.1:8080","remote":"127.0.0.1:41234","pid":12,"direction":"inbound"},` +
		`{"local":"[::ffff:10.0.0.2]:40000","remote":"[::ffff:10.0.0.9]:5672","pid":13,"direction":"outbound"}]}` + "\n"
	if out.String() != want {
		t.Errorf("JSON\n  %s\nwant\n  %s", out.String(), want)
	}
	out.Reset()
	out.Write(Format(e, false))
	want = "connections_dropped cgroup=/ connections=127.0.0.1:8080->127.0.0.1:41234/12,[::ffff:10.0.0.2]:40000->[::ffff:10.0.0.9]:5672/13 count=2 elapsed_ms=1.5 pid=1 strategy=subtree version=2\n"
	if out.String() != want {
		t.Errorf("text\n  %s\nwant\n  %s", out.String(), want)
	}
	// Nothing dropped still says so, with an empty list.
	empty := []contract.Connection{}
	e = contract.Event{Event: "connections_dropped", PID: 1, Count: &none, Connections: &empty, Warning: "no CAP_NET_ADMIN", Hidden: 2, Filtered: 1}
	out.Reset()
	out.Write(Format(e, true))
	want = `{"event":"connections_dropped","pid":1,"count":0,"connections":[],"filtered":1,"hidden":2,"warning":"no CAP_NET_ADMIN"}` + "\n"
	if out.String() != want {
		t.Errorf("JSON\n  %s\nwant\n  %s", out.String(), want)
	}
	out.Reset()
	out.Write(Format(e, false))
	want = `connections_dropped count=0 filtered=1 hidden=2 pid=1 warning="no CAP_NET_ADMIN"` + "\n"
	if out.String() != want {
		t.Errorf("text\n  %s\nwant\n  %s", out.String(), want)
	}
}
