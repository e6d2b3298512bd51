package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cgfreeze/cgfreeze/contract"
)

// EventQueue is how many events wait for a blocked stdout before the
// newest are dropped (and counted in an output_overflow event). A hold
// writes a handful of events; repairs during a long hold are what could
// fill it.
const EventQueue = 256

// Writer writes events on its own goroutine, so that a stdout nobody reads
// (a caller that reads only at the end, a stopped tee, a terminal paused
// with XOFF) never blocks the hold: Emit never waits. Events wait in a
// bounded queue; what overflows is counted and reported as an
// output_overflow event once output moves again. A closed stdout (EPIPE on
// a write, or the reader's end seen closed while nothing is written) closes
// Gone: the caller is gone.
type Writer struct {
	out  io.Writer
	json bool

	mu     sync.Mutex // guards closed against Emit's send
	closed bool
	queue  chan queued

	dropped atomic.Int64 // events dropped since the last report
	// queued counts the events queued (under mu); handled those the
	// writing goroutine is done with (written, or dropped at a broken
	// output); progress is closed and replaced at each, for Flush.
	queued   int64
	handled  int64
	progMu   sync.Mutex
	progress chan struct{}
	goneOnce sync.Once
	gone     chan struct{}
	finished chan struct{} // the writing goroutine has ended
	err      atomic.Value  // the first write error (error)

	// view, when not nil, is painted by the writing goroutine on its
	// terminal: after each event, every ViewTick, and on Repaint.
	view    *View
	repaint chan struct{}
	winch   chan struct{} // the terminal was resized: ask its width again
	width   func() int    // the terminal's width in columns (0: unknown)
}

// NewWriter starts writing events to out: one JSON object per line with
// asJSON, text lines otherwise. When out is a pipe or a socket, a
// goroutine also watches for its reader to go away.
func NewWriter(out io.Writer, asJSON bool) *Writer {
	return NewViewWriter(out, asJSON, nil, nil)
}

// NewViewWriter is NewWriter that also paints view (when not nil) on its
// terminal; width, when not nil, tells the terminal's width, asked at the
// start and on Resize.
func NewViewWriter(out io.Writer, asJSON bool, view *View, width func() int) *Writer {
	w := &Writer{out: out, json: asJSON, queue: make(chan queued, EventQueue),
		gone: make(chan struct{}), finished: make(chan struct{}), progress: make(chan struct{}),
		view: view, repaint: make(chan struct{}, 1), winch: make(chan struct{}, 1), width: width}
	go w.loop()
	if f, ok := out.(*os.File); ok {
		if fd, ok := watchable(f); ok {
			go w.watchClosed(fd)
		}
	}
	return w
}

// Emit stamps an event with the time and the schema version and queues
// it. It never blocks: when the queue is full the event is dropped and
// counted; after Close or once output is gone, it is dropped.
func (w *Writer) Emit(e contract.Event) {
	stamp(&e, time.Now())
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	select {
	case w.queue <- queued{e: e}:
		w.queued++
	default:
		w.dropped.Add(1)
	}
}

// queued is an event in the writer's queue; viewOnly ones are shown on the
// terminal view and not written.
type queued struct {
	e        contract.Event
	viewOnly bool
}

// Observe tells the terminal view of an event that another process wrote
// (the frozen event, which the supervisor writes before it hands the hold
// over), stamped at: the view shows it as if this writer had written it.
// Without a view it does nothing.
func (w *Writer) Observe(e contract.Event, at time.Time) {
	if w.view == nil {
		return
	}
	stamp(&e, at)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	select {
	case w.queue <- queued{e: e, viewOnly: true}:
		w.queued++
	default:
	}
}

// Flush waits until the events queued so far are written, or until done
// is closed or limit passes, whichever comes first; it reports whether they
// were written. A holder flushes the frozen event before it goes on, so
// that a caller sees "frozen" before anything else happens, as long as
// stdout moves; a blocked stdout costs the hold at most limit, and an end
// of the hold (done) none.
func (w *Writer) Flush(done <-chan struct{}, limit time.Duration) bool {
	w.mu.Lock()
	target := w.queued
	w.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		w.progMu.Lock()
		handled, progress := w.handled, w.progress
		w.progMu.Unlock()
		if handled >= target {
			return true
		}
		select {
		case <-progress:
		case <-w.finished:
			return false
		case <-done:
			return false
		case <-t.C:
			return false
		}
	}
}

// Gone is closed when output is known to be closed: the caller is gone.
func (w *Writer) Gone() <-chan struct{} { return w.gone }

// Err returns the first error writing an event, or nil.
func (w *Writer) Err() error {
	err, _ := w.err.Load().(error)
	return err
}

// Close stops taking events and waits up to limit for the queued ones to
// be written. It reports whether they were; a stdout that stays blocked is
// left behind (the process exits anyway).
func (w *Writer) Close(limit time.Duration) bool {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-w.finished:
		return true
	case <-t.C:
		return false
	}
}

// HasView tells whether the writer paints a terminal view.
func (w *Writer) HasView() bool { return w.view != nil }

// Repaint asks for the whole view to be painted again (Enter). It never
// blocks; without a view it does nothing.
func (w *Writer) Repaint() {
	select {
	case w.repaint <- struct{}{}:
	default:
	}
}

// Resize tells that the terminal was resized (SIGWINCH: also what kubectl
// attach sends when it attaches with a TTY): its width is asked again and
// the view painted again. It never blocks.
func (w *Writer) Resize() {
	select {
	case w.winch <- struct{}{}:
	default:
	}
}

func (w *Writer) loop() {
	defer close(w.finished)
	broken := false
	var tick <-chan time.Time
	viewBroken := false
	paint := func(s string) {
		if s == "" || viewBroken {
			return
		}
		if _, err := io.WriteString(w.view.out, s); err != nil {
			// A terminal that went away: events go on without the view.
			viewBroken = true
		}
	}
	if w.view != nil {
		t := time.NewTicker(ViewTick)
		defer t.Stop()
		tick = t.C
		if w.width != nil {
			w.view.SetWidth(w.width())
		}
	}
	write := func(e contract.Event) {
		if broken {
			return
		}
		b := Format(e, w.json)
		if len(b) == 0 {
			return
		}
		if _, err := w.out.Write(b); err != nil {
			broken = true
			w.err.CompareAndSwap(nil, err)
			if errors.Is(err, syscall.EPIPE) {
				w.markGone()
			}
		}
	}
	report := func() {
		if n := int(w.dropped.Swap(0)); n > 0 {
			e := contract.Event{Event: contract.EventOutputOverflow, Count: &n}
			stamp(&e, time.Now())
			write(e)
		}
	}
	for {
		select {
		case q, ok := <-w.queue:
			e := q.e
			if !ok {
				report()
				if w.view != nil {
					paint(w.view.Close())
				}
				return
			}
			if w.view != nil && !q.viewOnly {
				paint(w.view.BeforeEvent())
			}
			if !q.viewOnly {
				write(e)
			}
			if w.view != nil {
				paint(w.view.Event(e, time.Now()))
			}
			w.progMu.Lock()
			w.handled++
			close(w.progress)
			w.progress = make(chan struct{})
			w.progMu.Unlock()
			if len(w.queue) == 0 {
				report()
			}
		case <-tick:
			paint(w.view.Status(time.Now()))
		case <-w.repaint:
			if w.view != nil {
				paint(w.view.Repaint(time.Now()))
			}
		case <-w.winch:
			if w.view != nil {
				if w.width != nil {
					w.view.SetWidth(w.width())
				}
				paint(w.view.Repaint(time.Now()))
			}
		}
	}
}

func stamp(e *contract.Event, now time.Time) {
	if e.Time == "" {
		e.Time = now.UTC().Format(contract.TimeFormat)
	}
	if e.Schema == 0 {
		e.Schema = contract.Schema
	}
}

func (w *Writer) markGone() { w.goneOnce.Do(func() { close(w.gone) }) }

// Format returns an event as the line written on stdout: JSON, or text
// ("event key=value ..." with the keys sorted, and a value that holds a
// space, a quote, "=" or a backslash Go-quoted; no schema). Error events are not
// written in text mode: a person reads the log on stderr, which says it
// once.
func Format(e contract.Event, asJSON bool) []byte {
	if asJSON {
		// By hand, not json.Marshal: the same bytes, without the
		// reflection a fresh process pays on its first event, the
		// "frozen" one (contract.Event.AppendJSON). A float with no JSON
		// form gives an empty line, as json.Marshal's error did.
		b, _ := e.AppendJSON(make([]byte, 0, 256))
		return append(b, '\n')
	}
	if e.Event == contract.EventError {
		return nil
	}
	fields := map[string]string{}
	add := func(k, v string) {
		if v != "" {
			fields[k] = v
		}
	}
	num := func(k string, n int) {
		if n != 0 {
			add(k, strconv.Itoa(n))
		}
	}
	float := func(k string, f float64) {
		if f > 0 {
			add(k, strconv.FormatFloat(f, 'f', -1, 64))
		}
	}
	add("time", e.Time)
	num("pid", e.PID)
	add("cgroup", e.Cgroup)
	add("container_id", e.ContainerID)
	num("version", e.Version)
	add("strategy", e.Strategy)
	if e.Processes != nil {
		add("processes", strconv.Itoa(*e.Processes))
	}
	float("elapsed_ms", e.ElapsedMS)
	add("reason", e.Reason)
	add("signal", e.Signal)
	float("held_ms", e.HeldMS)
	add("state", e.State)
	add("frozen_by", e.FrozenBy)
	num("holder", e.Holder)
	add("namespace", e.Namespace)
	if e.Held != nil {
		add("held", strconv.FormatBool(*e.Held))
	}
	add("what", e.What)
	float("latency_ms", e.LatencyMS)
	if e.Count != nil {
		add("count", strconv.Itoa(*e.Count))
	}
	if e.Connections != nil {
		add("connections", connectionsText(*e.Connections))
	}
	add("shared", connectionsText(e.Shared))
	num("filtered", e.Filtered)
	num("hidden", e.Hidden)
	add("warning", e.Warning)
	add("error", e.Error)
	if e.ExitCode != nil {
		add("exit_code", strconv.Itoa(*e.ExitCode))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(e.Event)
	for _, k := range keys {
		v := fields[k]
		if strings.ContainsAny(v, " \t\"=\\") || !utf8.ValidString(v) {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

// connectionsText prints connections for the text events:
// "local->remote/pid,..." (no spaces, so that the value needs no quotes).
func connectionsText(cs []contract.Connection) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s->%s/%d", c.Local, c.Remote, c.PID))
	}
	return strings.Join(parts, ",")
}

// MS returns d in milliseconds, to the microsecond, as events give times.
func MS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
