package agent

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
)

// View is what a person sees of a hold on a terminal: what is frozen
// (the container ID or cgroup, the processes, the strategy), how to thaw
// (Ctrl-C, or the --duration deadline with a countdown), and a status line
// that the Writer repaints every ViewTick (frozen for how long, processes,
// connections dropped, repairs). Enter and SIGWINCH (kubectl attach sends a
// resize when it attaches with a TTY, after the first lines were written to
// nobody) paint it all again. The View only makes text: the Writer writes
// it from its own goroutine, between the events, so that a blocked
// terminal never blocks the hold, and an event line on the same terminal
// never lands inside the status line.
type View struct {
	out io.Writer
	// shared: the events are written to the same terminal (text events on
	// a stdout that is the terminal too): the status line is cleared
	// before an event line and painted again after it.
	shared   bool
	duration time.Duration
	// supervisor is the PID to send SIGTERM to, shown as the other way to
	// thaw (0: not shown).
	supervisor int
	width      int
	loc        *time.Location // of the clock times shown: the local zone

	frozen   *contract.Event // the frozen event, once the view shows it
	frozenAt time.Time
	// pending is the frozen event until holding brings the count
	// (schema 2): the header is written once, with it.
	pending    *contract.Event
	processes  int
	dropped    int
	dropTried  bool
	repairs    int
	violations int
	ended      bool
	statusOn   bool // the status line is on the screen (no newline after it)
}

// ViewTick is how often the status line is repainted: the elapsed time
// and the countdown are shown to the second.
const ViewTick = time.Second

// NewView makes the view of a hold on the terminal out. duration is the
// hold's --duration (0: none); supervisor the PID that SIGTERM thaws
// through (0: not shown); shared tells that the events are written to the
// same terminal.
func NewView(out io.Writer, duration time.Duration, supervisor int, shared bool) *View {
	return &View{out: out, duration: duration, supervisor: supervisor, shared: shared, loc: time.Local}
}

// SetLocation sets the zone of the clock times shown (tests use UTC).
func (v *View) SetLocation(loc *time.Location) { v.loc = loc }

// SetWidth sets the terminal's width in columns (0: unknown): the status
// line is cut to it, as a line that wraps cannot be repainted in place.
func (v *View) SetWidth(cols int) { v.width = cols }

const clearLine = "\r\x1b[K"

// clear returns what takes the status line off the screen.
func (v *View) clear() string {
	if !v.statusOn {
		return ""
	}
	v.statusOn = false
	return clearLine
}

// BeforeEvent returns what to write to the terminal before an event line
// is written to it (shared): the status line is cleared.
func (v *View) BeforeEvent() string {
	if !v.shared {
		return ""
	}
	return v.clear()
}

// Event updates the view with an event and returns what to write.
func (v *View) Event(e contract.Event, now time.Time) string {
	var b strings.Builder
	at := eventTime(e, now)
	switch e.Event {
	case contract.EventFrozen:
		ev := e
		v.frozenAt = at
		if e.Processes == nil {
			// Schema 2: the count comes in holding, right after.
			v.pending = &ev
			break
		}
		v.frozen, v.processes = &ev, *e.Processes
		b.WriteString(v.clear())
		b.WriteString(v.header())
	case contract.EventHolding:
		if v.pending == nil {
			break
		}
		v.frozen, v.pending = v.pending, nil
		if e.Processes != nil {
			v.processes = *e.Processes
		}
		b.WriteString(v.clear())
		b.WriteString(v.header())
	case contract.EventConnectionsDropped:
		v.dropTried = true
		if e.Count != nil {
			v.dropped += *e.Count
		}
		b.WriteString(v.clear())
		fmt.Fprintf(&b, "  %s dropped", plural(v.dropped, "connection", "connections"))
		if e.Warning != "" {
			b.WriteString(" (" + e.Warning + ")")
		}
		b.WriteString("\n")
	case contract.EventRepaired:
		v.repairs++
		b.WriteString(v.clear())
		fmt.Fprintf(&b, "  %s  repaired: %s in %s", at.In(v.loc).Format("15:04:05"), e.What, e.Cgroup)
		if e.Processes != nil {
			fmt.Fprintf(&b, " (%s)", plural(*e.Processes, "process", "processes"))
		}
		b.WriteString("\n")
	case contract.EventViolation:
		v.violations++
		b.WriteString(v.clear())
		fmt.Fprintf(&b, "  %s  NOT FROZEN: %s in %s: %s\n", at.In(v.loc).Format("15:04:05"), e.What, e.Cgroup, e.Error)
	case contract.EventThawed, contract.EventEnded:
		v.ended = true
		b.WriteString(v.clear())
		held := time.Duration(e.HeldMS * float64(time.Millisecond))
		if e.Event == contract.EventThawed {
			why := e.Reason
			if e.Signal != "" {
				why += " " + e.Signal
			}
			fmt.Fprintf(&b, "cgfreeze: thawed after %s (%s): the processes run again.\n", roundDuration(held), why)
		} else {
			fmt.Fprintf(&b, "cgfreeze: the hold ended after %s: %s (exit %d).\n", roundDuration(held), strings.ReplaceAll(e.Reason, "_", " "), deref(e.ExitCode))
		}
		return b.String()
	default:
		return ""
	}
	b.WriteString(v.status(now))
	return b.String()
}

// Close returns what takes the status line off the terminal when the
// writer closes (an error ends the hold: the log follows).
func (v *View) Close() string { return v.clear() }

// Status returns what repaints the status line at now.
func (v *View) Status(now time.Time) string {
	if v.frozen == nil || v.ended {
		return ""
	}
	return v.status(now)
}

// Repaint returns the whole view again (Enter, SIGWINCH).
func (v *View) Repaint(now time.Time) string {
	if v.frozen == nil || v.ended {
		return ""
	}
	s := v.clear() + v.header()
	return s + v.status(now)
}

func (v *View) status(now time.Time) string {
	if v.frozen == nil || v.ended {
		return ""
	}
	parts := []string{"frozen for " + now.Sub(v.frozenAt).Truncate(time.Second).String(), plural(v.processes, "process", "processes")}
	if v.dropTried {
		parts = append(parts, plural(v.dropped, "connection", "connections")+" dropped")
	}
	if v.repairs > 0 {
		parts = append(parts, plural(v.repairs, "repair", "repairs"))
	}
	if v.violations > 0 {
		parts = append(parts, plural(v.violations, "violation", "violations"))
	}
	if v.duration > 0 {
		left := v.frozenAt.Add(v.duration).Sub(now)
		parts = append(parts, "thaws in "+max(left, 0).Truncate(time.Second).String())
	}
	line := "  " + strings.Join(parts, " · ")
	if v.width > 1 && len([]rune(line)) >= v.width {
		line = string([]rune(line)[:v.width-1])
	}
	v.statusOn = true
	return clearLine + line
}

// header says what is frozen and how to thaw it.
func (v *View) header() string {
	e := v.frozen
	var b strings.Builder
	what := "cgroup " + e.Cgroup
	if e.ContainerID != "" {
		id := e.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		what = "container " + id + " (cgroup " + e.Cgroup + ")"
	}
	fmt.Fprintf(&b, "cgfreeze: FROZEN %s\n", what)
	fmt.Fprintf(&b, "  %s, PID %d, cgroup v%d, strategy %s; frozen at %s in %s ms\n",
		plural(v.processes, "process", "processes"), e.PID, e.Version, e.Strategy,
		v.frozenAt.In(v.loc).Format("15:04:05"), strconv.FormatFloat(e.ElapsedMS, 'f', -1, 64))
	thaw := "  To thaw: press Ctrl-C"
	if v.supervisor > 0 {
		thaw += fmt.Sprintf(" (or kill -TERM %d)", v.supervisor)
	}
	b.WriteString(thaw + ".\n")
	if v.duration > 0 {
		fmt.Fprintf(&b, "  Thaws by itself at %s (--duration %s).\n", v.frozenAt.Add(v.duration).In(v.loc).Format("15:04:05"), v.duration)
	} else {
		b.WriteString("  No --duration: it stays frozen until then.\n")
	}
	return b.String()
}

// eventTime is when an event happened, from its stamp.
func eventTime(e contract.Event, now time.Time) time.Time {
	if t, err := time.Parse(contract.TimeFormat, e.Time); err == nil {
		return t
	}
	return now
}

// roundDuration prints d to the second ("2m10s"), or to the millisecond
// under a second.
func roundDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Truncate(time.Second).String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
