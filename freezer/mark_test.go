//go:build linux

package freezer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestMarkJSON(t *testing.T) {
	since := time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC)
	for _, tt := range []struct {
		name string
		m    mark
		want string
	}{
		{
			name: "subtree with children",
			m:    mark{Holder: 4242, PIDNS: 4026532452, Start: 987654, Strategy: StrategySubtree, Since: since, Children: []string{"a", "b/c"}},
			want: `{"holder":4242,"pidns":4026532452,"start":987654,"strategy":"subtree","since":"2024-01-02T03:04:05.6Z","children":["a","b/c"]}`,
		},
		{
			name: "subtree intent on the target",
			m:    mark{Holder: 9, PIDNS: 4, Start: 3, Strategy: StrategySubtree, Since: since, Children: []string{"cgfreeze"}, Child: "cgfreeze-00ff00ff00ff00ff"},
			want: `{"holder":9,"pidns":4,"start":3,"strategy":"subtree","since":"2024-01-02T03:04:05.6Z","children":["cgfreeze"],"child":"cgfreeze-00ff00ff00ff00ff"}`,
		},
		{
			name: "freezer without children",
			m:    mark{Holder: 1, PIDNS: 4026531836, Start: 12, Strategy: StrategyFreezer, Since: since},
			want: `{"holder":1,"pidns":4026531836,"start":12,"strategy":"freezer","since":"2024-01-02T03:04:05.6Z"}`,
		},
		{
			name: "direct, empty children omitted",
			m:    mark{Holder: 7, PIDNS: 5, Start: 6, Strategy: StrategyDirect, Since: since, Children: []string{}},
			want: `{"holder":7,"pidns":5,"start":6,"strategy":"direct","since":"2024-01-02T03:04:05.6Z"}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("json.Marshal(mark) =\n  %s\nwant\n  %s", b, tt.want)
			}
			// A mark written by one cgfreeze is read back by another.
			var back mark
			if err := json.Unmarshal([]byte(tt.want), &back); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", tt.want, err)
			}
			if !back.Since.Equal(tt.m.Since) {
				t.Errorf("round trip: Since = %v, want %v", back.Since, tt.m.Since)
			}
			back.Since, tt.m.Since = time.Time{}, time.Time{}
			if len(tt.m.Children) == 0 {
				tt.m.Children = nil
			}
			if !reflect.DeepEqual(back, tt.m) {
				t.Errorf("round trip = %#v, want %#v", back, tt.m)
			}
		})
	}
}

func TestMarkJSONFromOtherVersions(t *testing.T) {
	// Unknown fields (a newer cgfreeze) are ignored; missing ones are zero.
	in := `{"holder":9,"pidns":10,"start":11,"strategy":"subtree","since":"2024-01-02T03:04:05Z","children":["x"],"future":true}`
	var m mark
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := mark{Holder: 9, PIDNS: 10, Start: 11, Strategy: StrategySubtree, Since: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Children: []string{"x"}}
	if !m.Since.Equal(want.Since) {
		t.Errorf("Since = %v, want %v", m.Since, want.Since)
	}
	m.Since, want.Since = time.Time{}, time.Time{}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("json.Unmarshal(%s) = %#v, want %#v", in, m, want)
	}
}

// writeProc writes a fake /proc/<pid> with a pid namespace link and a stat
// whose start time is start.
func writeProc(t *testing.T, root string, pid int, pidNS string, start uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if pidNS != "" {
		if err := os.Symlink(pidNS, filepath.Join(dir, "ns", "pid")); err != nil {
			t.Fatal(err)
		}
	}
	stat := strconv.Itoa(pid) + " (cg freeze) S 1 1 1 0 -1 4194560 10 0 0 0 1 1 0 0 20 0 1 0 " +
		strconv.FormatUint(start, 10) + " 1000 10 18446744073709551615\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNewMark(t *testing.T) {
	root := t.TempDir()
	self := os.Getpid()
	writeProc(t, root, self, "pid:[4026532452]", 123456)

	before := time.Now()
	m := newMark(root, StrategySubtree)
	after := time.Now()

	if m.Holder != self || m.PIDNS != 4026532452 || m.Start != 123456 || m.Strategy != StrategySubtree || m.Children != nil {
		t.Errorf("newMark = %#v, want holder %d, pidns 4026532452, start 123456, strategy subtree, no children", m, self)
	}
	if m.Since.Before(before.Add(-time.Second)) || m.Since.After(after.Add(time.Second)) {
		t.Errorf("newMark Since = %v, want between %v and %v", m.Since, before, after)
	}
	if m.Since.Location() != time.UTC {
		t.Errorf("newMark Since is in %v, want UTC", m.Since.Location())
	}
}

func TestNewMarkWithoutProc(t *testing.T) {
	m := newMark(filepath.Join(t.TempDir(), "nonexistent"), StrategyFreezer)
	if m.Holder != os.Getpid() || m.PIDNS != 0 || m.Start != 0 || m.Strategy != StrategyFreezer {
		t.Errorf("newMark(no proc) = %#v, want holder %d with zero pidns and start", m, os.Getpid())
	}
}

// TestChildName: every freeze names its child anew, with 64 random bits
// that a workload cannot guess; IsChildName knows the shape (and the
// legacy name) and nothing else.
func TestChildName(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		name, err := newChildName()
		if err != nil {
			t.Fatal(err)
		}
		if !IsChildName(name) || len(name) != len(ChildPrefix)+childRandomLen {
			t.Errorf("newChildName() = %q, not a child name", name)
		}
		if seen[name] {
			t.Errorf("newChildName() gave %q twice", name)
		}
		seen[name] = true
	}
	for name, want := range map[string]bool{
		"cgfreeze":                    true,
		"cgfreeze-0123456789abcdef":   true,
		"cgfreeze-0123456789ABCDEF":   true,
		"cgfreeze-0123456789abcdeg":   false,
		"cgfreeze-0123456789abcde":    false,
		"cgfreeze-0123456789abcdef0":  false,
		"cgfreeze-":                   false,
		"xcgfreeze-0123456789abcdef":  false,
		"cgfreeze.0123456789abcdef":   false,
		"cgfreezer":                   false,
		"cgfreeze-0123456789abcdef/x": false,
	} {
		if got := IsChildName(name); got != want {
			t.Errorf("IsChildName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestOwnershipChildren: which in-place children a recovery thaws comes
// from the target's subtree mark, else from its child's; a v1 or direct
// mark has none.
func TestOwnershipChildren(t *testing.T) {
	sub := &mark{Strategy: StrategySubtree, Children: []string{"a"}, Child: "cgfreeze-0123456789abcdef"}
	legacy := &mark{Strategy: StrategySubtree, Children: []string{"b"}}
	for _, tt := range []struct {
		o    ownership
		any  bool
		want []string
	}{
		{ownership{}, false, nil},
		{ownership{mark: sub}, true, []string{"a"}},
		{ownership{mark: sub, children: []string{sub.Child}, childMark: sub}, true, []string{"a"}},
		{ownership{children: []string{"cgfreeze"}, childMark: legacy}, true, []string{"b"}},
		{ownership{mark: &mark{Strategy: StrategyDirect}}, true, nil},
	} {
		if got := tt.o.any(); got != tt.any {
			t.Errorf("%+v.any() = %v, want %v", tt.o, got, tt.any)
		}
		if got := tt.o.subtreeChildren(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v.subtreeChildren() = %v, want %v", tt.o, got, tt.want)
		}
	}
}
