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
	events := path.Join(cgPath, "cgroup.events")
	w := root.Watch(events)
	defer w.Close()
	step := pollFirst
	for {
		// Through the watch's descriptor, which its arming read has
		// read already: the file is not opened and read again.
		var frozen bool
		var err error
		if content, ok := w.Read(); ok {
			_, frozen, err = parseEvents(cgPath, content)
		} else {
			frozen, err = readFrozen(root, cgPath)
		}
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
			return fmt.Errorf("%s still says frozen %d: %w", events, btoi(frozen), cause)
		}
		w.Wait(min(remaining, step))
		step = min(2*step, pollFallback)
	}
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
// every cgroup frozen.
func waitTreeFrozen(ctx context.Context, root *mount.Root, cgPath string) error {
	for {
		if err := waitSubtreeFrozen(ctx, root, cgPath); err != nil {
			return err
		}
		stable, err := treeFrozen(root, cgPath)
		if err != nil || stable {
			return err
		}
	}
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
