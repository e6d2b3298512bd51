package agent

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cgfreeze/cgfreeze/freezer"
)

// checkWire holds the hand-written argument of a channel message against
// json.Marshal, and checks that json.Unmarshal (the holder's reader) reads
// it back.
func checkWire[T Intent | Handover](t *testing.T, v T) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	got := encodeJSON(v)
	if got != string(want) {
		t.Errorf("encodeJSON(%+v) =\n %s\nwant\n %s", v, got, want)
	}
	var back T
	if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Errorf("json.Unmarshal(%s) = %+v, %v; want %+v", got, back, err, v)
	}
}

// TestWireJSON: every field of the intent (freezer.Handle) and of the
// hand-over, set and left out, and paths that JSON escapes.
func TestWireJSON(t *testing.T) {
	for _, h := range []freezer.Handle{
		{},
		{PID: 7, Path: "/x"},
		{PID: 42, ContainerID: "abc123", Version: 2, Path: "/my pod/ctr", Strategy: freezer.StrategyDirect},
		{PID: math.MaxInt, Version: 1, Path: "/kubepods/<&>\u2028\"\\\n\x01é", Strategy: freezer.StrategyFreezer,
			EnteredNamespace: true, Controllers: []string{"freezer"}},
		{PID: -1, Version: 2, Path: "/", Strategy: freezer.StrategySubtree, Controllers: []string{"cpu", "memory", "pids"}},
	} {
		checkWire(t, Intent{h})
	}
	typ := reflect.TypeFor[freezer.Handle]()
	if typ.NumField() != 7 {
		t.Errorf("freezer.Handle has %d fields, Intent.appendJSON writes 7: write the new ones", typ.NumField())
	}
	for _, h := range []Handover{{}, {Processes: 1000, FrozenAt: 1700000000000000123}, {Processes: -1, FrozenAt: math.MinInt64}} {
		checkWire(t, h)
	}
}

// FuzzWireJSON: intents built from the fuzzer's values (controllers split
// on commas) give json.Marshal's bytes.
func FuzzWireJSON(f *testing.F) {
	f.Add(int64(1), "", 2, "/x", "direct", false, "")
	f.Add(int64(-5), "c<id>", 1, "/a b/\u2029\xff", "freezer", true, "cpu,,memory")
	f.Fuzz(func(t *testing.T, pid int64, cid string, version int, path, strategy string, entered bool, controllers string) {
		h := freezer.Handle{PID: int(pid), ContainerID: cid, Version: version, Path: path, Strategy: freezer.Strategy(strategy),
			EnteredNamespace: entered}
		if controllers != "" {
			h.Controllers = strings.Split(controllers, ",")
		}
		want, _ := json.Marshal(Intent{h})
		if got := encodeJSON(Intent{h}); got != string(want) {
			t.Errorf("encodeJSON(%+v) =\n %s\nwant\n %s", h, got, want)
		}
		ho := Handover{Processes: version, FrozenAt: pid}
		want, _ = json.Marshal(ho)
		if got := encodeJSON(ho); got != string(want) {
			t.Errorf("encodeJSON(%+v) = %s, want %s", ho, got, want)
		}
	})
}
