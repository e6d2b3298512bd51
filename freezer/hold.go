//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cgfreeze/cgfreeze/mount"
)

// Ends of a hold that Hold reports as its error.
var (
	// ErrTargetGone: the target's cgroup emptied or was removed while it
	// was held (its manager stopped or restarted it). Nothing is left to
	// thaw.
	ErrTargetGone = errors.New("target gone")
	// ErrThawedByOther: the target's owner or runtime thawed it during the
	// hold (runc thaws a paused v1 container before it kills it). cgfreeze
	// does not fight it: the hold ends.
	ErrThawedByOther = errors.New("target thawed by another")
)

// HoldReport is one thing Hold saw and did while it held the target.
type HoldReport struct {
	// Kind is "repaired" (Hold put the freeze back) or "violation" (it
	// could not: something of the target may run).
	Kind string
	// What happened: "joined" (processes joined the target's own cgroup),
	// "child_created" (a child cgroup of the target appeared, not frozen),
	// "child_thawed" (someone thawed a child cgroup of the target),
	// "not_frozen" (a cgroup that should be frozen has not said so for
	// holdConfirmLimit), and for violations only "child_unreadable" (a
	// child's cgroup.freeze cannot be read) and "mark" (the mark could not
	// record a child the hold froze: a dead holder's recovery would leave
	// that child frozen).
	What string
	// Cgroup is the cgroup concerned, as the target's path is written.
	Cgroup string
	// Processes is how many processes the repair concerned.
	Processes int
	// Latency is the time from when the change could first have been seen
	// to when it was repaired: from the notification (a child cgroup
	// created or thawed), or from the last scan that found the target's
	// own cgroup empty (joined).
	Latency time.Duration
	// Err says why a violation could not be repaired.
	Err error
}

// Limits of the hold.
const (
	// holdRepairLimit bounds one repair (a migration, a child's freeze
	// and its confirmation), which must not inherit the caller's context:
	// a repair under way finishes before the hold ends.
	holdRepairLimit = time.Second
	// holdConfirmLimit is how long a cgroup that should be frozen may say
	// "frozen 0" (a process that joins a frozen cgroup unfreezes it for a
	// moment) before the hold reports it as a violation.
	holdConfirmLimit = time.Second
)

// holdPolicy is how often a strategy's hold looks without a notification.
type holdPolicy struct {
	// quickEvery is the period of the strategy's cheap look outside the
	// mount's thread (holdQuick), on a goroutine of its own; 0 for none.
	quickEvery time.Duration
	// fullEvery is the period of a full check on the mount's thread,
	// whether or not a notification came.
	fullEvery time.Duration
}

// hold is the state of one Hold call.
type hold struct {
	f      *Frozen
	n      *mount.Notifier
	report func(HoldReport)
	// procs (subtree: the target's cgroup.procs), selfFreezing and state
	// (v1: the target's freezer.self_freezing and freezer.state) are the
	// files a strategy's quick look re-reads, kept open (probe).
	procs, selfFreezing, state *mount.Probe
	// freeze and events (direct) are the target's cgroup.freeze and
	// cgroup.events, kept open for the periodic check.
	freeze, events *mount.Probe
	// probes are the files kept open, closed with the hold.
	probes []*mount.Probe
	// member (v1) is /proc/<PID>/cgroup of the process the target was
	// resolved from, as the hold first read it from memberFile, kept open:
	// while it reads the same, that process is still in the target, which
	// is populated, and the full check need not list the target's
	// processes (v1HoldFullEvery). The open file stays with the process
	// it was opened for: once that process is gone it reads an error, even
	// if its PID is reused.
	member     string
	memberFile *mount.Probe
	// lastQuiet is when the quick look last found nothing to repair (Unix
	// nanoseconds; the quick look runs on a goroutine of its own).
	lastQuiet atomic.Int64
	// quickHit tells the hold's loop that the quick look found something.
	quickHit atomic.Bool
	// woke is when the notification or timer that started this check
	// came.
	woke time.Time
	// known are the child cgroups the hold has seen (subtree), with
	// whether they are cgfreeze's (in f.children) or another's.
	known map[string]bool
	// unfrozenSince is when a cgroup that should be frozen first read
	// "frozen 0", for holdConfirmLimit.
	unfrozenSince map[string]time.Time
	// violated holds the violations reported and not yet cleared, so that
	// each is reported once.
	violated map[string]bool
}

func (h *hold) violation(what, cg string, err error) {
	k := what + " " + cg
	if h.violated[k] {
		return
	}
	h.violated[k] = true
	h.report(HoldReport{Kind: "violation", What: what, Cgroup: cg, Err: err})
}

func (h *hold) cleared(what, cg string) { delete(h.violated, what+" "+cg) }

func (h *hold) repaired(what, cg string, n int, since time.Time) {
	h.cleared(what, cg)
	h.report(HoldReport{Kind: "repaired", What: what, Cgroup: cg, Processes: n, Latency: time.Since(since)})
}

// frozenOrLate tracks a cgroup that should be frozen: it reports a violation
// once the cgroup has said "frozen 0" for holdConfirmLimit.
func (h *hold) frozenOrLate(cg string, frozen bool) {
	if frozen {
		delete(h.unfrozenSince, cg)
		h.cleared("not_frozen", cg)
		return
	}
	since, ok := h.unfrozenSince[cg]
	if !ok {
		h.unfrozenSince[cg] = time.Now()
		return
	}
	if time.Since(since) >= holdConfirmLimit {
		h.violation("not_frozen", cg, fmt.Errorf("%s has said frozen 0 for %v though its freeze is asked for (a task that cannot freeze?)", cg, time.Since(since).Round(time.Millisecond)))
	}
}

// Hold keeps a confirmed freeze true until ctx is done, repairing what can
// be repaired and reporting each repair and violation through report
// (called from Hold's goroutine). It returns nil when ctx ends the hold,
// or an error wrapping ErrTargetGone or ErrThawedByOther when the target
// ended it. Thaw after Hold returns, whatever it returned.
//
// What it watches, and how soon it acts, depends on the strategy (see
// docs/design.md, "The hold"): v1 and direct only watch for the end of the
// hold (the kernel keeps everything below a frozen cgroup frozen); subtree
// also moves processes that join the target's own cgroup into the frozen
// child, and freezes child cgroups created or thawed during the hold.
func (f *Frozen) Hold(ctx context.Context, report func(HoldReport)) error {
	if report == nil {
		report = func(HoldReport) {}
	}
	t := f.Target
	h := &hold{f: f, report: report, known: map[string]bool{}, unfrozenSince: map[string]time.Time{}, violated: map[string]bool{}}
	var policy holdPolicy
	err := t.fs.Do(func(root *mount.Root) error {
		h.n = root.NewNotifier()
		var err error
		policy, err = f.impl.holdStart(root, h)
		return err
	})
	defer h.close()
	if err != nil {
		return err
	}
	// The notifier's wake-up ends a wait at once when ctx ends: the thaw
	// that follows must not wait for a timer.
	stop := context.AfterFunc(ctx, h.n.Wake)
	defer stop()
	now := time.Now()
	h.lastQuiet.Store(now.UnixNano())
	// The quick look runs on the hold's goroutine, at a tick of the
	// notifier's own (a timerfd), and so does the full check, every so
	// many ticks: each period costs one wake-up of one thread (100 to
	// 180 µs of CPU on the test machine, docs/design.md), the wait sets no
	// timer of the Go runtime (whose monitor thread would wake for it
	// too), and the mount's thread is used only for a full check. Where
	// the tick cannot be set, a goroutine of its own on Go's timers.
	period := policy.quickEvery
	if period == 0 {
		period = policy.fullEvery
	}
	inline := period > 0 && h.n.SetTick(period) == nil
	ticksPerFull, ticks := 1, 0
	if inline {
		ticksPerFull = max(int(policy.fullEvery/period), 1)
	}
	if policy.quickEvery > 0 && !inline {
		quit := make(chan struct{})
		done := make(chan struct{})
		go h.quickLoop(policy.quickEvery, quit, done)
		defer func() {
			close(quit)
			<-done
		}()
	}
	// The first check is a full one, at once: it sees what changed
	// between the confirmed freeze and the start of the hold.
	fullDue, nextFull := true, now
	for {
		wait := mount.NoLimit
		switch {
		case fullDue:
			wait = 0
		case !inline:
			wait = max(time.Until(nextFull), 0)
		}
		changed, err := h.n.Wait(wait)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("hold of %s: %w", t.Path, err)
		}
		now := time.Now()
		quick := h.quickHit.Swap(false)
		if inline && h.n.Ticked() {
			if ticks++; ticks >= ticksPerFull {
				ticks, fullDue = 0, true
			}
			if policy.quickEvery > 0 && !fullDue {
				if f.impl.holdQuick(h) {
					quick = true
				} else {
					h.lastQuiet.Store(now.UnixNano())
				}
			}
		}
		if !inline && !now.Before(nextFull) {
			fullDue = true
		}
		full := fullDue
		if !full && !quick && len(changed) == 0 {
			continue
		}
		if full {
			fullDue, nextFull = false, now.Add(policy.fullEvery)
		}
		h.woke = now
		if err := t.fs.Do(func(root *mount.Root) error { return f.impl.holdCheck(root, h, changed, full) }); err != nil {
			return err
		}
	}
}

// quickLoop makes the strategy's quick look every period until quit is
// closed, and wakes the hold's loop when the look finds something.
func (h *hold) quickLoop(period time.Duration, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case now := <-tick.C:
			if h.f.impl.holdQuick(h) {
				if !h.quickHit.Swap(true) {
					h.n.Wake()
				}
			} else {
				h.lastQuiet.Store(now.UnixNano())
			}
		}
	}
}

// close ends the hold's watches.
func (h *hold) close() {
	for _, p := range h.probes {
		_ = p.Close()
	}
	if h.n != nil {
		h.n.Close()
	}
}

// probe opens a file of the target's cgroup, cg, for the quick look; a
// cgroup removed meanwhile is ErrTargetGone.
func (h *hold) probe(root *mount.Root, cg, file string) (*mount.Probe, error) {
	p, err := root.OpenProbe(cg + "/" + file)
	if err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return nil, gone(cg, "was removed")
		}
		return nil, classify(err)
	}
	h.probes = append(h.probes, p)
	return p, nil
}

// gone wraps ErrTargetGone for a cgroup that was removed or emptied.
func gone(cg, why string) error {
	return fmt.Errorf("%w: %s %s", ErrTargetGone, cg, why)
}

// readGone reads a file of the hold's target; a cgroup removed meanwhile is
// ErrTargetGone.
func readGone(root *mount.Root, cg, file string) (string, error) {
	v, err := root.ReadFile(cg + "/" + file)
	if err != nil && ignoreCgroupRemoved(err) == nil {
		return "", gone(cg, "was removed")
	}
	return v, classify(err)
}
