//go:build linux

package freezer

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkMarkJSON holds the hand-written mark against json.Marshal.
func checkMarkJSON(t *testing.T, m mark) {
	t.Helper()
	want, wantErr := json.Marshal(m)
	got, err := m.appendJSON(nil)
	if (err != nil) != (wantErr != nil) || string(got) != string(want) {
		t.Errorf("appendJSON(%+v) = %s, %v; want %s, %v", m, got, err, want, wantErr)
	}
}

// TestMarkAppendJSON: marks of every strategy, with and without children, times
// with and without nanoseconds, and times appendJSON leaves to
// json.Marshal (another zone, a year out of range).
func TestMarkAppendJSON(t *testing.T) {
	now := time.Now().UTC()
	for _, m := range []mark{
		{},
		{Holder: 42, PIDNS: 4026531836, Start: 123456789, Strategy: StrategyFreezer, Since: now},
		{Holder: -1, PIDNS: 1<<64 - 1, Strategy: StrategySubtree, Since: now.Truncate(time.Second),
			Children: []string{"a", "b <&>\u2028\xff"}, Child: "cgfreeze-0123456789abcdef"},
		{Strategy: StrategyDirect, Since: time.Date(2026, 11, 30, 18, 0, 0, 100, time.UTC), Children: []string{}},
		{Since: time.Date(2026, 11, 30, 18, 0, 0, 0, time.FixedZone("x", 3600))},
		{Since: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Since: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		checkMarkJSON(t, m)
	}
	if n := reflect.TypeFor[mark]().NumField(); n != 7 {
		t.Errorf("mark has %d fields, appendJSON writes 7: write the new ones", n)
	}
}

func FuzzMarkJSON(f *testing.F) {
	f.Add(1, uint64(2), uint64(3), "freezer", int64(1700000000123456789), "a,b", "cgfreeze-x")
	f.Add(-5, uint64(0), uint64(1<<63), "\xff<", int64(-62135596800000000000/1000), "", "")
	f.Fuzz(func(t *testing.T, holder int, pidns, start uint64, strategy string, since int64, children, child string) {
		m := mark{Holder: holder, PIDNS: pidns, Start: start, Strategy: Strategy(strategy), Since: time.Unix(0, since).UTC(), Child: child}
		if children != "" {
			m.Children = strings.Split(children, ",")
		}
		checkMarkJSON(t, m)
	})
}
