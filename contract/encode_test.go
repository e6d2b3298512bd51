package contract

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

// checkJSON holds AppendJSON against json.Marshal, which defines the
// format: the same bytes, or for a value with no JSON form the same error
// and b unchanged.
func checkJSON(t *testing.T, e Event) {
	t.Helper()
	want, wantErr := json.Marshal(e)
	prefix := []byte("x")
	got, err := e.AppendJSON(prefix)
	if wantErr != nil {
		var unsupported *json.UnsupportedValueError
		if err == nil || !errors.As(err, &unsupported) || err.Error() != wantErr.Error() || string(got) != "x" {
			t.Errorf("AppendJSON(%+v) = %q, %v; want %q unchanged and json.Marshal's error %v", e, got, err, prefix, wantErr)
		}
		return
	}
	if err != nil || string(got) != "x"+string(want) {
		t.Errorf("AppendJSON(%+v) =\n%s, %v; want\n x%s", e, got, err, want)
	}
}

func ptr[T any](v T) *T { return &v }

// TestAppendJSON: the events cgfreeze writes, the edges of omitempty
// (a pointer to zero is written, a pointer to an empty slice gives [], to
// a nil slice null; an empty Shared is left out), strings and floats that
// encoding/json escapes or writes in exponent form, and the values with no
// JSON form.
func TestAppendJSON(t *testing.T) {
	conns := []Connection{{Local: "10.0.0.1:80", Remote: "10.0.0.2:5000", PID: 7, Direction: "in"}, {}}
	for _, e := range []Event{
		{},
		{Event: EventFrozen, Time: "2026-11-30T18:00:00.123456Z", Schema: Schema, PID: 4242, Cgroup: "/kubepods/pod1/ctr",
			Version: 2, Strategy: "direct", Processes: ptr(1000), ElapsedMS: 1.234},
		{Event: EventThawed, Reason: ReasonSignal, Signal: "SIGTERM", HeldMS: 5000.001, ElapsedMS: 0.5},
		{Event: EventStatus, State: "frozen", FrozenBy: "cgfreeze", Holder: 9, Namespace: "default", Held: ptr(false), ContainerID: "abc"},
		{Event: EventRepaired, What: "joined", LatencyMS: 0.031, Processes: ptr(0)},
		{Event: EventOutputOverflow, Count: ptr(0)},
		{Event: EventError, Error: `open "/sys/fs/cgroup/x": <denied> & more`, ExitCode: ptr(0), Warning: "w\n\t\x01"},
		{Event: EventConnectionsDropped, Connections: &[]Connection{}, Shared: []Connection{}},
		{Event: EventConnectionsDropped, Connections: new([]Connection), Shared: nil},
		{Event: EventConnectionsDropped, Connections: &conns, Shared: conns[:1], Filtered: -3, Hidden: 2},
		{Event: "\u2028\u2029\xff\xc3(", Cgroup: "/é€😀\x7f"},
		{ElapsedMS: math.Copysign(0, -1), HeldMS: 1e-7, LatencyMS: 1e21},
		{ElapsedMS: 5e-324, HeldMS: -math.MaxFloat64, LatencyMS: 999999999999999999999},
		{Event: "x", ElapsedMS: math.NaN()},
		{HeldMS: math.Inf(1)},
		{LatencyMS: math.Inf(-1), Event: "y"},
	} {
		checkJSON(t, e)
	}
}

// TestAppendJSONEveryField sets each field of Event alone, so that a field
// added to Event and not to AppendJSON fails here (fill knows every kind
// of field Event has, and fails on a new one).
func TestAppendJSONEveryField(t *testing.T) {
	typ := reflect.TypeFor[Event]()
	for i := range typ.NumField() {
		for _, variant := range []uint64{0, 1} {
			var e Event
			fill(t, reflect.ValueOf(&e).Elem().Field(i), variant, "a<b", -7, 0.25)
			checkJSON(t, e)
		}
	}
}

// fill sets v, a field of Event, from the fuzzer's values: a string to s,
// an int to n, a float to f, a pointer to one of these, and a slice of
// connections to none, an empty one or some (variant picks).
func fill(t *testing.T, v reflect.Value, variant uint64, s string, n int64, f float64) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int:
		v.SetInt(n)
	case reflect.Float64:
		v.SetFloat(f)
	case reflect.Bool:
		v.SetBool(variant&1 != 0)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), variant, s, n, f)
		v.Set(p)
	case reflect.Slice:
		if v.Type() != reflect.TypeFor[[]Connection]() {
			t.Fatalf("fill knows no field of type %v: teach it, and AppendJSON", v.Type())
		}
		switch variant % 4 {
		case 0: // nil
		case 1:
			v.Set(reflect.ValueOf([]Connection{}))
		default:
			cs := make([]Connection, variant%4-1)
			for i := range cs {
				cs[i] = Connection{Local: s, Remote: s + "r", PID: int(n) + i, Direction: "out"}
			}
			v.Set(reflect.ValueOf(cs))
		}
	default:
		t.Fatalf("fill knows no field of kind %v: teach it, and AppendJSON", v.Kind())
	}
}

// FuzzAppendJSON builds events from the fuzzer's values: mask picks which
// fields are set (bit i for field i) and how (the bits above), each string
// field gets s1 or s2, each int n1 or n2, each float f1 or f2 (alternating
// with the field's index).
func FuzzAppendJSON(f *testing.F) {
	f.Add(uint64(0), "", "", int64(0), int64(0), 0.0, 0.0)
	f.Add(uint64(1<<40-1), EventFrozen, "/kubepods/pod 1/ctr", int64(1000), int64(-1), 1.234, 5000.5)
	f.Add(uint64(0xffff_ffff_ffff_ffff), "<&>\u2028", "\xff\x00\"\\", int64(math.MinInt64), int64(math.MaxInt64), 1e-7, 1e21)
	f.Add(uint64(0xaaaa_aaaa_aaaa_aaaa), "é€😀", "\t\n", int64(0), int64(7), math.Copysign(0, -1), 5e-324)
	f.Add(uint64(0x5555_5555_5555_5555), "x", "y", int64(3), int64(0), math.NaN(), math.Inf(1))
	f.Fuzz(func(t *testing.T, mask uint64, s1, s2 string, n1, n2 int64, f1, f2 float64) {
		var e Event
		v := reflect.ValueOf(&e).Elem()
		for i := range v.NumField() {
			if mask&(1<<(i%32)) == 0 {
				continue
			}
			s, n, x := s1, n1, f1
			if i%2 == 1 {
				s, n, x = s2, n2, f2
			}
			fill(t, v.Field(i), mask>>(32+i%32), s, n, x)
		}
		checkJSON(t, e)
	})
}
