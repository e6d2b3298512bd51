package agent

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// screen is a fake terminal: it applies what the view writes (text, "\r",
// "\n", and ESC [ K, erase to the end of the line) to lines of text, as a
// terminal shows them.
type screen struct {
	lines []string
	col   int
}

func (s *screen) Write(p []byte) (int, error) {
	if len(s.lines) == 0 {
		s.lines = []string{""}
	}
	str := string(p)
	for i := 0; i < len(str); i++ {
		last := len(s.lines) - 1
		switch {
		case str[i] == '\r':
			s.col = 0
		case str[i] == '\n':
			s.lines = append(s.lines, "")
			s.col = 0
		case strings.HasPrefix(str[i:], "\x1b[K"):
			if s.col < len(s.lines[last]) {
				s.lines[last] = s.lines[last][:s.col]
			}
			i += 2
		default:
			l := s.lines[last]
			for len(l) < s.col {
				l += " "
			}
			if s.col < len(l) {
				l = l[:s.col] + str[i:i+1] + l[s.col+1:]
			} else {
				l += str[i : i+1]
			}
			s.lines[last] = l
			s.col++
		}
	}
	return len(p), nil
}

func (s *screen) String() string { return strings.Join(s.lines, "\n") }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the tests with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

var viewStart = time.Date(2026, 11, 30, 13, 20, 1, 204117000, time.UTC)

func stampAt(e contract.Event, at time.Duration) contract.Event {
	e.Time = viewStart.Add(at).Format(contract.TimeFormat)
	return e
}

func frozenEvent() contract.Event {
	return contract.Event{Event: contract.EventFrozen, PID: 1, Cgroup: "/kubepods/burstable/pod1/8aa7568f79cd", Version: 2,
		Strategy: "subtree", ElapsedMS: 4.1,
		ContainerID: "8aa7568f79cd08f7c72e9e1666432cf7cc2a5fadc372c592c17c9a4c9d09b66a"}
}

// holdingEvent follows frozenEvent (schema 2): the count.
func holdingEvent() contract.Event {
	n := 3
	e := frozenEvent()
	e.Event, e.ElapsedMS, e.Processes = contract.EventHolding, 0, &n
	return e
}

// freezeEvents plays frozen then holding, 1 ms apart, as cgfreeze
// writes them; the view writes its header with holding.
func freezeEvents(v *View, w func(string)) {
	if out := v.Event(stampAt(frozenEvent(), 0), viewStart); out != "" {
		panic("the view wrote on frozen, before the count: " + out)
	}
	w(v.Event(stampAt(holdingEvent(), time.Millisecond), viewStart.Add(time.Millisecond)))
}

// TestViewGolden plays holds through the view and keeps both what was
// written (with the control characters visible) and the screen a terminal
// shows at the end.
func TestViewGolden(t *testing.T) {
	two := 2
	one := 1
	for _, tt := range []struct {
		name     string
		duration time.Duration
		shared   bool
		width    int
		steps    func(v *View, w func(string))
	}{
		{"view-signal", 0, false, 0, func(v *View, w func(string)) {
			freezeEvents(v, w)
			for s := 1; s <= 3; s++ {
				w(v.Status(viewStart.Add(time.Duration(s) * time.Second)))
			}
			w(v.Status(viewStart.Add(2*time.Minute + 10*time.Second)))
			thawed := contract.Event{Event: contract.EventThawed, Reason: "signal", Signal: "interrupt", HeldMS: 130500}
			w(v.Event(stampAt(thawed, 130500*time.Millisecond), viewStart.Add(130500*time.Millisecond)))
		}},
		{"view-duration-drop", time.Minute, false, 0, func(v *View, w func(string)) {
			freezeEvents(v, w)
			drop := contract.Event{Event: contract.EventConnectionsDropped, Count: &two}
			w(v.Event(stampAt(drop, 8*time.Millisecond), viewStart.Add(8*time.Millisecond)))
			w(v.Status(viewStart.Add(10 * time.Second)))
			rep := contract.Event{Event: contract.EventRepaired, What: "joined", Cgroup: "/kubepods/burstable/pod1/8aa7568f79cd", Processes: &one}
			w(v.Event(stampAt(rep, 12*time.Second), viewStart.Add(12*time.Second)))
			w(v.Status(viewStart.Add(50 * time.Second)))
			// Enter, or kubectl attach's resize: everything again.
			w(v.Repaint(viewStart.Add(51 * time.Second)))
			w(v.Status(viewStart.Add(61 * time.Second)))
			thawed := contract.Event{Event: contract.EventThawed, Reason: "duration", HeldMS: 60000}
			w(v.Event(stampAt(thawed, time.Minute), viewStart.Add(time.Minute)))
		}},
		{"view-shared-ended", 0, true, 40, func(v *View, w func(string)) {
			w(v.BeforeEvent())
			w("frozen cgroup=/x (the event line on the same terminal)\n")
			w(v.Event(stampAt(frozenEvent(), 0), viewStart))
			w(v.BeforeEvent())
			w("holding cgroup=/x processes=3 (the event line)\n")
			w(v.Event(stampAt(holdingEvent(), time.Millisecond), viewStart.Add(time.Millisecond)))
			w(v.Status(viewStart.Add(5 * time.Second)))
			code := contract.ExitTargetGone
			ended := contract.Event{Event: contract.EventEnded, Reason: "target_gone", ExitCode: &code, HeldMS: 6000}
			w(v.BeforeEvent())
			w("ended reason=target_gone (the event line)\n")
			w(v.Event(stampAt(ended, 6*time.Second), viewStart.Add(6*time.Second)))
			// After the end, nothing more is painted.
			w(v.Status(viewStart.Add(7 * time.Second)))
			w(v.Repaint(viewStart.Add(7 * time.Second)))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var raw strings.Builder
			scr := &screen{}
			v := NewView(scr, tt.duration, 4242, tt.shared)
			v.SetLocation(time.UTC)
			v.SetWidth(tt.width)
			tt.steps(v, func(s string) {
				raw.WriteString(strconv.Quote(s) + "\n")
				_, _ = scr.Write([]byte(s))
			})
			golden(t, tt.name+".golden", "--- written:\n"+raw.String()+"--- screen:\n"+scr.String()+"\n")
		})
	}
}

// TestWriterPaintsView: the writer paints the view around the events, on
// its own terminal, and nothing when it has no view.
func TestWriterPaintsView(t *testing.T) {
	var out strings.Builder
	scr := &screen{}
	v := NewView(scr, 0, 0, false)
	w := NewViewWriter(&out, true, v, func() int { return 80 })
	w.Emit(frozenEvent())
	w.Emit(holdingEvent())
	w.Repaint()
	w.Resize()
	w.Emit(contract.Event{Event: contract.EventThawed, Reason: "signal", Signal: "terminated", HeldMS: 1500})
	if !w.Close(time.Second) {
		t.Fatal("the writer did not finish")
	}
	got := scr.String()
	for _, want := range []string{"cgfreeze: FROZEN container 8aa7568f79cd", "To thaw: press Ctrl-C.", "cgfreeze: thawed after 1s (signal terminated)"} {
		if !strings.Contains(got, want) {
			t.Errorf("the screen lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(out.String(), "FROZEN") || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("the events on stdout are not three JSON lines:\n%s", out.String())
	}
	if NewWriter(&out, true).HasView() {
		t.Error("NewWriter has a view")
	}
}
