//go:build linux

package freezer

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/mount"
)

// pollFallback is how long a wait on cgroup.events sleeps when no
// notification arrives, in case one is missed.
const pollFallback = 100 * time.Millisecond

// pollFirst is the first of a wait's looks again without a notification,
// each twice as long as the one before, up to pollFallback. The kernel
// sends at most one notification of a cgroup file per 10 ms
// (CGROUP_FILE_NOTIFY_MIN_INTV) and defers the next by a timer: a freeze
// whose cgroup said "frozen 0" a moment before (a thaw) would otherwise
// be confirmed up to 10 ms late, where the kernel took 0.05 ms. The looks
// cost a read each, some 7 in the first 10 ms; the confirmation comes at
// most about twice as late as the kernel's.
const pollFirst = 100 * time.Microsecond

// waitFrozen waits until cgroup.events of cgPath says "frozen" is want.
func waitFrozen(ctx context.Context, root *mount.Root, cgPath string, want bool) error {
	w := root.Watch(path.Join(cgPath, "cgroup.events"))
	defer w.Close()
	return waitWatched(ctx, w, root, cgPath, want)
}

// waitWatched is waitFrozen on a watch of cgPath's cgroup.events that the
// caller made and closes.
func waitWatched(ctx context.Context, w *mount.Watcher, root *mount.Root, cgPath string, want bool) error {
	step := pollFirst
	for {
		frozen, err := readWatched(w, root, cgPath)
		if err != nil {
			return err
		}
		if frozen == want {
			return nil
		}
		deadline, _ := ctx.Deadline()
		remaining := time.Until(deadline)
		if ctx.Err() != nil || remaining <= 0 {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return fmt.Errorf("%s still says frozen %d: %w", path.Join(cgPath, "cgroup.events"), btoi(frozen), cause)
		}
		w.Wait(min(remaining, step))
		step = min(2*step, pollFallback)
	}
}

// readWatched reads the "frozen" line of cgPath's cgroup.events through
// the watch's descriptor, which its arming read has read already (the
// file is not opened and read again), or by opening the file where the
// watch cannot read.
func readWatched(w *mount.Watcher, root *mount.Root, cgPath string) (bool, error) {
	if content, ok := w.Read(); ok {
		_, frozen, err := parseEvents(cgPath, content)
		return frozen, err
	}
	return readFrozen(root, cgPath)
}

func readFrozen(root *mount.Root, cgPath string) (bool, error) {
	_, frozen, err := readEvents(root, cgPath)
	return frozen, err
}

// readEvents reads the populated and frozen lines of cgroup.events.
func readEvents(root *mount.Root, cgPath string) (populated, frozen bool, err error) {
	events, err := root.ReadFile(path.Join(cgPath, "cgroup.events"))
	if err != nil {
		return false, false, err
	}
	return parseEvents(cgPath, events)
}

// parseEvents parses the populated and frozen lines of cgPath's
// cgroup.events.
func parseEvents(cgPath, events string) (populated, frozen bool, err error) {
	found := false
	for _, line := range strings.Split(events, "\n") {
		k, v, ok := strings.Cut(line, " ")
		switch {
		case ok && k == "frozen":
			frozen, found = v == "1", true
		case ok && k == "populated":
			populated = v == "1"
		}
	}
	if !found {
		return false, false, fmt.Errorf("%s/cgroup.events has no frozen line", cgPath)
	}
	return populated, frozen, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// v2State is what cgroup.freeze asks for and cgroup.events confirms.
func v2State(root *mount.Root, cgPath string) (requested, frozen bool, err error) {
	req, err := root.ReadFile(path.Join(cgPath, "cgroup.freeze"))
	if err != nil {
		return false, false, err
	}
	frozen, err = readFrozen(root, cgPath)
	return req == "1", frozen, err
}

func stateName(requested, frozen bool) string {
	switch {
	case frozen:
		return "frozen"
	case requested:
		return "freezing"
	}
	return "thawed"
}

// waitTreeFrozen waits until cgPath and every cgroup below it say frozen,
// and still say so when read again. The target's own "frozen 1" should
// imply its descendants', but on Linux 6.18, freezing right after a thaw,
// a child was seen saying "frozen 0" right after its parent said 1, and a
// cgroup's "frozen 1" was seen to drop back to 0 for a moment (tasks woken
// by the thaw that had not yet run, leaving the freezer and re-entering
// it): a freeze is confirmed only when a whole pass over the tree finds
// every cgroup frozen, and a second read of each says so again.
//
// A target without child cgroups (a container's usual cgroup) is both
// passes at the price of one look each: the read of cgroup.events right
// after the write (the watch's arming read, which a small cgroup that the
// kernel froze at once answers) or after the wait, the listing that finds
// no child, and a second read through the watch's open descriptor (one
// pread(2)). A child made after the listing cannot hold a process that is
// not frozen: the kernel makes a cgroup under a freezing parent frozen, and
// a process that moves into it freezes on the way. A tree with children
// takes a second whole pass over it, as before.
func waitTreeFrozen(ctx context.Context, root *mount.Root, cgPath string) error {
	w := root.Watch(path.Join(cgPath, "cgroup.events"))
	defer w.Close()
	for {
		if err := waitWatched(ctx, w, root, cgPath, true); err != nil {
			return err
		}
		children, err := root.Children(cgPath)
		if err != nil {
			return err
		}
		if len(children) == 0 {
			frozen, err := readWatched(w, root, cgPath)
			if err != nil || frozen {
				return err
			}
			// Dropped back: the tasks are on their way into the
			// freezer again; look again a moment later, within the
			// deadline.
			if err := dropBack(ctx, w, cgPath); err != nil {
				return err
			}
			continue
		}
		for _, c := range children {
			if err := waitSubtreeFrozen(ctx, root, path.Join(cgPath, c)); ignoreCgroupRemoved(err) != nil {
				return err
			}
		}
		stable, err := treeFrozen(root, cgPath)
		if err != nil || stable {
			return err
		}
		if err := dropBack(ctx, w, cgPath); err != nil {
			return err
		}
	}
}

// dropBack waits a moment after a cgroup of cgPath's tree said frozen and
// then no longer did, so that a tree that keeps flickering is not read in
// a busy loop, and ends the wait for it with the deadline.
func dropBack(ctx context.Context, w *mount.Watcher, cgPath string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s/cgroup.events kept going back from frozen 1 to 0: %w", cgPath, context.Cause(ctx))
	}
	w.Wait(pollFirst)
	return nil
}

// treeFrozen tells whether cgPath and every cgroup below it say frozen now.
func treeFrozen(root *mount.Root, cgPath string) (bool, error) {
	frozen, err := readFrozen(root, cgPath)
	if err != nil || !frozen {
		return false, ignoreCgroupRemoved(err)
	}
	children, err := root.Children(cgPath)
	if err != nil {
		return false, ignoreCgroupRemoved(err)
	}
	for _, c := range children {
		if ok, err := treeFrozen(root, path.Join(cgPath, c)); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func waitSubtreeFrozen(ctx context.Context, root *mount.Root, cgPath string) error {
	if err := waitFrozen(ctx, root, cgPath, true); err != nil {
		return err
	}
	children, err := root.Children(cgPath)
	if err != nil {
		return ignoreCgroupRemoved(err)
	}
	for _, c := range children {
		if err := waitSubtreeFrozen(ctx, root, path.Join(cgPath, c)); ignoreCgroupRemoved(err) != nil {
			return err
		}
	}
	return nil
}
