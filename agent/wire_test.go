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
	var back, parsed T
	if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, v) {
		t.Errorf("json.Unmarshal(%s) = %+v, %v; want %+v", got, back, err, v)
	}
	if err := parseWire(&parsed, got); err != nil || !reflect.DeepEqual(parsed, v) {
		t.Errorf("parseJSON(%s) = %+v, %v; want %+v", got, parsed, err, v)
	}
}

func parseWire[T Intent | Handover](v *T, s string) error {
	switch v := any(v).(type) {
	case *Intent:
		return v.parseJSON(s)
	case *Handover:
		return v.parseJSON(s)
	}
	panic("unreachable")
}

// wireInputs are arguments the holder may be sent: well-formed ones in
// other spellings (white space, escapes, surrogates, a repeated member,
// null), and malformed ones that json.Unmarshal refuses.
var wireInputs = []string{
	`{"pid":1,"path":"/x"}`, `{"processes":1}`, `{}`, `null`, ` { "pid" : 7 , "path" : "/a b" } `,
	`{"pid":3,"path":"/"}`, `{"pid":-0,"path":"\u002fk\/\"\\\b\f\n\r\t\ud83d\ude00\ud800x\udc00"}`,
	"{\"path\":\"\xff\xc3(\xed\xa0\x80é\"}", `{"path":"/a","path":"/b"}`, `{"controllers":[]}`, `{"controllers":null}`,
	`{"controllers":["cpu" , "memory"],"entered_namespace":true,"strategy":"subtree","version":2,"container_id":"c"}`,
	`{"processes":1000,"frozen_at":1700000000000000123}`, `{"frozen_at":-9223372036854775808}`,
	"/not-json", `{"pid":3}`, `{"pid":"3"}`, `{"pid":1.5}`, `{"pid":1e3}`, `{"pid":01}`, `{"pid":-}`, `{"pid":99999999999999999999}`,
	`{"pid":1,}`, `{"pid":1`, `{"pid":1}x`, `{"pid":1}{}`, `[1]`, `"x"`, `{"path":"a` + "\n" + `"}`, `{"path":"\x"}`,
	`{"path":"\u12"}`, `{"path":"\`, `{"entered_namespace":1}`, `{"controllers":["a",1]}`, `{"controllers":["a"`,
	`{"processes":"1"}`, `{"frozen_at":1.0}`, `{pid:1}`, `{"pid" 1}`, `{"pid":true}`, `{"path":nul}`, "",
}

// TestWireParse: the holder reads every input as json.Unmarshal does, or
// refuses it; what json.Unmarshal refuses, it refuses.
func TestWireParse(t *testing.T) {
	for _, s := range wireInputs {
		compareParse(t, s)
	}
	// The well-formed intents among them are read, not refused.
	for _, s := range wireInputs[:12] {
		var in Intent
		if err := in.parseJSON(s); err != nil && s != `{"processes":1}` {
			t.Errorf("parseJSON(%q): %v", s, err)
		}
	}
	for _, s := range []string{`{"processes":1}`, `{}`, `null`, `{"processes":1000,"frozen_at":1700000000000000123}`, `{"frozen_at":-9223372036854775808}`} {
		var h Handover
		if err := h.parseJSON(s); err != nil {
			t.Errorf("Handover.parseJSON(%q): %v", s, err)
		}
	}
}

func FuzzWireParse(f *testing.F) {
	for _, s := range wireInputs {
		f.Add(s)
	}
	f.Fuzz(compareParse)
}

func compareParse(t *testing.T, s string) {
	t.Helper()
	compareParseOf[Intent](t, s)
	compareParseOf[Handover](t, s)
}

func compareParseOf[T Intent | Handover](t *testing.T, s string) {
	t.Helper()
	var want, got T
	wantErr := json.Unmarshal([]byte(s), &want)
	err := parseWire(&got, s)
	switch {
	case wantErr != nil && err == nil:
		t.Errorf("parseJSON(%q) = %+v, want an error as json.Unmarshal's %v", s, got, wantErr)
	case err == nil && !reflect.DeepEqual(got, want):
		t.Errorf("parseJSON(%q) = %+v, want %+v as json.Unmarshal reads it", s, got, want)
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
