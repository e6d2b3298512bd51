package freezer

import (
	"context"
	"errors"
	"time"
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
	// "child_created", "child_thawed", ...
	What string
	// Cgroup is the cgroup concerned, as the target's path is written.
	Cgroup string
	// Processes is how many processes the repair concerned.
	Processes int
	// Latency is the time from when the change could first have been seen
	// to when it was repaired.
	Latency time.Duration
	// Err says why a violation could not be repaired.
	Err error
}

// Hold keeps a confirmed freeze true until ctx is done, repairing what can
// be repaired and reporting each repair and violation through report
// (called from Hold's goroutine). It returns nil when ctx ends the hold,
// or an error wrapping ErrTargetGone or ErrThawedByOther when the target
// ended it. Thaw after Hold returns, whatever it returned.
func (f *Frozen) Hold(ctx context.Context, report func(HoldReport)) error {
	// Placeholder until the hold watcher lands (issue 9, part c).
	<-ctx.Done()
	return nil
}
