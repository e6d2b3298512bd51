package freezer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// Limits of the loops below.
const (
	// rollbackLimit bounds a rollback after a failed freeze, which must
	// not inherit the expired deadline of the freeze it undoes.
	rollbackLimit = 10 * time.Second
	// pollFallback is how long a wait on cgroup.events sleeps when no
	// inotify event arrives, in case one is missed.
	pollFallback = 100 * time.Millisecond
	// einvalRetries and einvalPause: a migration can fail with EINVAL for a
	// moment (a task in the middle of fork or exit); runc retries so too.
	einvalRetries = 5
	einvalPause   = 30 * time.Millisecond
	// v1 freezer: freezer.state is re-read with a back-off from
	// v1BackoffBase to v1MaxBackoff (v1 has no notification), FROZEN is
	// written again every v1RewriteEvery reads (it kicks the tasks that
	// have not frozen yet), and a FREEZING that does not settle within
	// v1ThawAfter is broken by a short thaw, the way runc does.
	v1BackoffBase  = 50 * time.Microsecond
	v1MaxBackoff   = time.Millisecond
	v1RewriteEvery = 8
	v1ThawAfter    = 500 * time.Millisecond
	v1ThawPause    = 10 * time.Millisecond
)

// Frozen is a confirmed freeze of a target. Thaw it.
type Frozen struct {
	Target *Target
	// Processes is the number of processes in the target's cgroup tree
	// when the freeze was confirmed.
	Processes int
	// Recovered tells what Freeze undid first: the leftovers of a
	// cgfreeze that died holding this target.
	Recovered Recovery
	// children are the target's child cgroups that the subtree strategy
	// froze in place.
	children []string
	// moved is the number of processes the subtree strategy moved.
	moved int
	// counted, once the freeze has started, brings the count made beside
	// it (countAside).
	counted chan countResult
	// lock is the holder's lock on the target, kept until the thaw.
	lock *os.File
}

// Freeze freezes the target and returns once the kernel confirms it (v1
// freezer.state FROZEN, v2 cgroup.events "frozen 1"). ctx must carry a
// deadline; when it expires or is cancelled first, everything done is
// rolled back and the error wraps ErrFreezeFailed (and ErrThawFailed if the
// rollback failed too).
//
// The caller becomes the target's holder: a second Freeze or Recover, from
// this process or any other, is refused with ErrAlreadyFrozen until Thaw
// succeeds or the holder dies. Leftovers of a holder that died are undone
// first (Frozen.Recovered says so). A target frozen by another tool is
// refused with ErrAlreadyFrozen and left alone.
func Freeze(ctx context.Context, t *Target) (*Frozen, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("freezer.Freeze needs a context with a deadline")
	}
	f := &Frozen{Target: t}
	if t.Strategy != StrategySubtree {
		f.countAside()
	}
	err := t.fs.Do(func(root *mount.Root) (err error) {
		lock, err := lockTargetWait(root, t.Path, lockGrace)
		if errors.Is(err, errHeld) {
			return heldError(root, t.Path)
		}
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = lock.Close()
			}
		}()
		if err := faults.Point("freeze:locked"); err != nil {
			return err
		}
		if f.Recovered, err = recoverLocked(ctx, root, t); err != nil {
			return err
		}
		switch t.Strategy {
		case StrategyFreezer:
			err = f.freezeV1(ctx, root)
		case StrategyDirect:
			err = f.freezeDirect(ctx, root)
		case StrategySubtree:
			err = f.freezeSubtree(ctx, root)
		default:
			err = fmt.Errorf("unknown strategy %q", t.Strategy)
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			// Confirmed, but too late, or after the caller gave up
			// (a signal): the caller no longer waits for this freeze.
			return rollback(fmt.Errorf("%w: %w", ErrFreezeFailed, context.Cause(ctx)), func(ctx context.Context) error {
				return thaw(ctx, root, t.Path, t.Strategy, f.children)
			})
		}
		if err := faults.Point("freeze:confirmed"); err != nil {
			return err
		}
		f.lock = lock
		f.Processes, err = f.count(root)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

type countResult struct {
	n   int
	err error
}

// countAside counts the target's processes while the mount's thread
// freezes: the kernel lists a cgroup's processes at about 1 µs each (v2) to
// 1.5 µs (v1, which sorts them), 5 to 8 ms for 5000 processes, which the
// frozen event would otherwise wait for after the freeze. It starts with
// the freeze: a process that forks or exits while the kernel freezes may be
// counted or not, as the kernel lists it. It uses a mount of its own, made
// from its own goroutine (mount.OpenReader), which locks and ends no OS
// thread; so only for a target in cgfreeze's own cgroup namespace, where
// any thread sees the same paths. For the others Freeze counts after the
// freeze, on the mount's thread.
func (f *Frozen) countAside() {
	t := f.Target
	if t.EnteredNamespace {
		return
	}
	f.counted = make(chan countResult, 1)
	go func() {
		root, closeRoot, err := mount.OpenReader(t.spec, t.mopts)
		if err != nil {
			f.counted <- countResult{err: err}
			return
		}
		defer closeRoot()
		n, err := countProcesses(root, t.Path)
		f.counted <- countResult{n, err}
	}()
}

// count returns the number of processes the confirmed freeze holds: the
// count made beside the freeze (v1, direct), or the processes the subtree
// strategy moved and those of the children it froze in place; else, it
// counts now.
func (f *Frozen) count(root *mount.Root) (int, error) {
	t := f.Target
	switch {
	case f.counted != nil:
		if r := <-f.counted; r.err == nil {
			return r.n, nil
		}
	case t.Strategy == StrategySubtree:
		n := f.moved
		for _, name := range f.children {
			m, err := countProcesses(root, path.Join(t.Path, name))
			if err != nil {
				return 0, ignoreCgroupRemoved(err)
			}
			n += m
		}
		return n, nil
	}
	return countProcesses(root, t.Path)
}

// Thaw undoes the freeze and returns once the kernel confirms it, with every
// moved process back in the target's cgroup and the child cgroup removed. It
// retries until ctx, which must carry a deadline, ends; then the error wraps
// ErrThawFailed and says what is left.
func (f *Frozen) Thaw(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("freezer.Frozen.Thaw needs a context with a deadline")
	}
	t := f.Target
	return t.fs.Do(func(root *mount.Root) error {
		if err := faults.Point("thaw:started"); err != nil {
			return fmt.Errorf("%w: %w", ErrThawFailed, err)
		}
		if err := retryThaw(ctx, func() error { return thaw(ctx, root, t.Path, t.Strategy, f.children) }); err != nil {
			return err
		}
		if err := faults.Point("thaw:confirmed"); err != nil {
			return fmt.Errorf("%w: %w", ErrThawFailed, err)
		}
		if f.lock != nil {
			_ = f.lock.Close()
			f.lock = nil
		}
		return nil
	})
}

// Abandon gives up the holder's lock without thawing, for a caller whose
// Thaw failed and that hands the target over to a watchdog or to `cgfreeze
// thaw`, which need the lock to recover it.
func (f *Frozen) Abandon() {
	t := f.Target
	_ = t.fs.Do(func(*mount.Root) error {
		if f.lock != nil {
			_ = f.lock.Close()
			f.lock = nil
		}
		return nil
	})
}

// retryThaw repeats an idempotent thaw until it succeeds or ctx ends.
func retryThaw(ctx context.Context, thawOnce func() error) error {
	for {
		err := thawOnce()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrThawFailed, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func thaw(ctx context.Context, root *mount.Root, cgPath string, s Strategy, children []string) error {
	switch s {
	case StrategyFreezer:
		return thawV1(ctx, root, cgPath)
	case StrategyDirect:
		return thawDirect(ctx, root, cgPath)
	case StrategySubtree:
		return thawSubtree(ctx, root, cgPath, children)
	}
	return fmt.Errorf("unknown strategy %q", s)
}

// rollback undoes a failed freeze; err is the failure. The rollback gets a
// deadline of its own.
func rollback(err error, undo func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackLimit)
	defer cancel()
	if rerr := retryThaw(ctx, func() error { return undo(ctx) }); rerr != nil {
		return fmt.Errorf("%w; the rollback failed too: %w", err, rerr)
	}
	return err
}

// alreadyFrozen explains a target that is frozen before cgfreeze touched it.
func alreadyFrozen(root *mount.Root, markedPath, cgPath, state string) error {
	m, err := readMark(root, markedPath)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s is %s; its cgfreeze mark cannot be read: %w", ErrAlreadyFrozen, cgPath, state, err)
	case m != nil:
		return fmt.Errorf("%w: %s was left %s by a cgfreeze that is gone (PID %d, since %s); run `cgfreeze thaw` with the same --pid to undo it", ErrAlreadyFrozen, cgPath, state, m.Holder, m.Since.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %s is %s by someone else (for example runc pause or docker pause); cgfreeze does not take over another tool's freeze: undo it with that tool", ErrAlreadyFrozen, cgPath, state)
}

// --- cgroup v1 ---

func (f *Frozen) freezeV1(ctx context.Context, root *mount.Root) (err error) {
	t := f.Target
	stateFile := path.Join(t.Path, "freezer.state")
	state, err := root.ReadFile(stateFile)
	if err != nil {
		return classify(err)
	}
	if state != "THAWED" {
		return alreadyFrozen(root, t.Path, t.Path, strings.ToLower(state))
	}
	if err := writeMark(root, t.Path, newMark(t.procRoot, StrategyFreezer)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = rollback(err, func(ctx context.Context) error { return thawV1(ctx, root, t.Path) })
		}
	}()
	if err := faults.Point("freeze:marked"); err != nil {
		return err
	}
	write := func() error {
		if err := root.WriteFile(stateFile, "FROZEN"); err != nil {
			return classify(err)
		}
		return faults.Point("freeze:written")
	}
	if err := write(); err != nil {
		return err
	}
	since, backoff := time.Now(), v1BackoffBase
	for i := 1; ; i++ {
		state, err := root.ReadFile(stateFile)
		if err != nil {
			return classify(err)
		}
		if state == "FROZEN" {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s still reads %s after %d tries (processes keep forking, or are in uninterruptible sleep): %w", ErrFreezeFailed, stateFile, state, i, context.Cause(ctx))
		}
		switch {
		case time.Since(since) >= v1ThawAfter:
			// Processes that keep forking can hold FREEZING for long; a
			// brief thaw lets them settle before the next try.
			if err := root.WriteFile(stateFile, "THAWED"); err != nil {
				return classify(err)
			}
			threadSleep(v1ThawPause)
			if err := write(); err != nil {
				return err
			}
			since, backoff = time.Now(), v1BackoffBase
			continue
		case i%v1RewriteEvery == 0:
			if err := write(); err != nil {
				return err
			}
		}
		threadSleep(backoff)
		backoff = min(2*backoff, v1MaxBackoff)
	}
}

// threadSleep sleeps on the calling OS thread, the mount's: Go's timers
// round a sleep below a millisecond up to about one (the runtime's poller
// waits in whole milliseconds), which the v1 back-off would pay at every
// read.
func threadSleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		var rem unix.Timespec
		if err := unix.Nanosleep(&ts, &rem); !errors.Is(err, unix.EINTR) {
			return
		}
		ts = rem
	}
}

func thawV1(ctx context.Context, root *mount.Root, cgPath string) error {
	stateFile := path.Join(cgPath, "freezer.state")
	if err := root.WriteFile(stateFile, "THAWED"); err != nil {
		if ignoreCgroupRemoved(err) == nil {
			return nil
		}
		return classify(err)
	}
	if err := faults.Point("thaw:written"); err != nil {
		return err
	}
	for {
		// freezer.state shows the combined state with the ancestors;
		// self_freezing is this cgroup's own.
		self, err := root.ReadFile(path.Join(cgPath, "freezer.self_freezing"))
		if err != nil {
			return ignoreCgroupRemoved(err)
		}
		if self == "0" {
			return ignoreCgroupRemoved(root.RemoveXattr(cgPath, markXattr))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: self_freezing still 1 after writing THAWED", cgPath)
		}
		time.Sleep(time.Millisecond)
	}
}

// --- cgroup v2 ---

// waitFrozen waits until cgroup.events of cgPath says "frozen" is want.
func waitFrozen(ctx context.Context, root *mount.Root, cgPath string, want bool) error {
	events := path.Join(cgPath, "cgroup.events")
	w := root.Watch(events)
	defer w.Close()
	for {
		frozen, err := readFrozen(root, cgPath)
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
		w.Wait(min(remaining, pollFallback))
	}
}

func readFrozen(root *mount.Root, cgPath string) (bool, error) {
	events, err := root.ReadFile(path.Join(cgPath, "cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(events, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == "frozen" {
			return v == "1", nil
		}
	}
	return false, fmt.Errorf("%s/cgroup.events has no frozen line", cgPath)
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

func (f *Frozen) freezeDirect(ctx context.Context, root *mount.Root) (err error) {
	t := f.Target
	requested, frozen, err := v2State(root, t.Path)
	if err != nil {
		return classify(err)
	}
	if requested || frozen {
		return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
	}
	if err := writeMark(root, t.Path, newMark(t.procRoot, StrategyDirect)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = rollback(err, func(ctx context.Context) error { return thawDirect(ctx, root, t.Path) })
		}
	}()
	if err := faults.Point("freeze:marked"); err != nil {
		return err
	}
	if err := root.WriteFile(path.Join(t.Path, "cgroup.freeze"), "1"); err != nil {
		return classify(err)
	}
	if err := faults.Point("freeze:written"); err != nil {
		return err
	}
	if err := waitTreeFrozen(ctx, root, t.Path); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	return nil
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

func thawDirect(ctx context.Context, root *mount.Root, cgPath string) error {
	if err := root.WriteFile(path.Join(cgPath, "cgroup.freeze"), "0"); err != nil {
		return ignoreCgroupRemoved(classify(err))
	}
	if err := faults.Point("thaw:written"); err != nil {
		return err
	}
	if err := waitFrozen(ctx, root, cgPath, false); err != nil {
		return ignoreCgroupRemoved(err)
	}
	return ignoreCgroupRemoved(root.RemoveXattr(cgPath, markXattr))
}

func (f *Frozen) freezeSubtree(ctx context.Context, root *mount.Root) (err error) {
	t := f.Target
	child := path.Join(t.Path, ChildName)
	if ok, err := root.Exists(child); err != nil {
		return err
	} else if ok {
		return alreadyFrozen(root, child, t.Path, "frozen through "+child)
	}
	requested, frozen, err := v2State(root, t.Path)
	if err != nil {
		return classify(err)
	}
	if requested || frozen {
		return alreadyFrozen(root, t.Path, t.Path, stateName(requested, frozen))
	}
	// The child cgroups of the target are frozen where they are; those
	// frozen already belong to someone else and are left alone.
	names, err := root.Children(t.Path)
	if err != nil {
		return classify(err)
	}
	for _, name := range names {
		req, err := root.ReadFile(path.Join(t.Path, name, "cgroup.freeze"))
		if err != nil {
			return classify(err)
		}
		if req == "0" {
			f.children = append(f.children, name)
		}
	}

	if err := root.Mkdir(child); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return alreadyFrozen(root, child, t.Path, "frozen through "+child)
		}
		return classify(err)
	}
	defer func() {
		if err != nil {
			err = rollback(err, func(ctx context.Context) error { return thawSubtree(ctx, root, t.Path, f.children) })
		}
	}()
	if err := faults.Point("freeze:child-created"); err != nil {
		return err
	}
	m := newMark(t.procRoot, StrategySubtree)
	m.Children = f.children
	if err := writeMark(root, child, m); err != nil {
		return err
	}
	if err := faults.Point("freeze:marked"); err != nil {
		return err
	}
	// The destination is frozen while still empty, so that every process
	// stops the moment it arrives (as crun migrates).
	if err := root.WriteFile(path.Join(child, "cgroup.freeze"), "1"); err != nil {
		return classify(err)
	}
	if err := waitFrozen(ctx, root, child, true); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	if err := faults.Point("freeze:child-frozen"); err != nil {
		return err
	}
	if f.moved, err = migrate(ctx, root, t.Path, child, "freeze:half-migrated"); err != nil {
		return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
	}
	if err := faults.Point("freeze:migrated"); err != nil {
		return err
	}
	for _, name := range f.children {
		if err := root.WriteFile(path.Join(t.Path, name, "cgroup.freeze"), "1"); err != nil {
			return classify(err)
		}
	}
	if err := faults.Point("freeze:written"); err != nil {
		return err
	}
	for _, name := range append([]string{ChildName}, f.children...) {
		if err := waitTreeFrozen(ctx, root, path.Join(t.Path, name)); err != nil {
			return fmt.Errorf("%w: %w", ErrFreezeFailed, err)
		}
	}
	return nil
}

func thawSubtree(ctx context.Context, root *mount.Root, cgPath string, children []string) error {
	child := path.Join(cgPath, ChildName)
	for _, name := range children {
		if err := root.WriteFile(path.Join(cgPath, name, "cgroup.freeze"), "0"); ignoreCgroupRemoved(err) != nil {
			return classify(err)
		}
	}
	exists, err := root.Exists(child)
	if err != nil {
		return err
	}
	if exists {
		if err := root.WriteFile(path.Join(child, "cgroup.freeze"), "0"); ignoreCgroupRemoved(err) != nil {
			return classify(err)
		}
		if err := faults.Point("thaw:written"); err != nil {
			return err
		}
		if _, err := migrate(ctx, root, child, cgPath, "thaw:half-restored"); ignoreCgroupRemoved(err) != nil {
			return err
		}
		if err := faults.Point("thaw:restored"); err != nil {
			return err
		}
		if err := root.Rmdir(child); ignoreCgroupRemoved(err) != nil {
			return err
		}
	}
	for _, name := range children {
		if err := waitFrozen(ctx, root, path.Join(cgPath, name), false); ignoreCgroupRemoved(err) != nil {
			return err
		}
	}
	return nil
}

// migrate moves every process of src (its own processes, not those of its
// children) into dst, one write(2) of one PID at a time, until src lists
// none: a process that forks meanwhile is caught by the next round.
// halfway is the fault point passed once half of the first round moved.
// It returns how many processes it moved.
func migrate(ctx context.Context, root *mount.Root, src, dst, halfway string) (total int, err error) {
	if src == dst {
		return 0, nil
	}
	dstProcs, err := root.Open(path.Join(dst, "cgroup.procs"), unix.O_WRONLY)
	if err != nil {
		return 0, classify(err)
	}
	defer dstProcs.Close()
	srcFile := path.Join(src, "cgroup.procs")
	for {
		content, err := root.ReadFile(srcFile)
		if err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return total, fmt.Errorf("%w: %s is a threaded cgroup", ErrUnsafeTarget, src)
			}
			return total, classify(err)
		}
		pids, err := procs.ParsePIDs(strings.NewReader(content))
		if err != nil {
			return total, fmt.Errorf("%s: %w", srcFile, err)
		}
		if len(pids) == 0 {
			return total, nil
		}
		if ctx.Err() != nil {
			return total, fmt.Errorf("%d processes still in %s: %w", len(pids), src, context.Cause(ctx))
		}
		moved, hidden := 0, 0
		seen := make(map[int]bool, len(pids))
		for _, pid := range pids {
			// The kernel lists a process outside the reader's PID
			// namespace as 0, and writing 0 would move cgfreeze itself.
			if pid == 0 {
				hidden++
				continue
			}
			if seen[pid] {
				continue
			}
			seen[pid] = true
			ok, err := movePID(dstProcs, pid)
			if err != nil {
				return total, err
			}
			if ok {
				moved++
				total++
			}
			if len(seen) == (len(pids)+1)/2 {
				if err := faults.Point(halfway); err != nil {
					return total, err
				}
			}
		}
		if hidden == len(pids) {
			return total, fmt.Errorf("%d processes in %s are outside cgfreeze's PID namespace (cgroup.procs lists them as 0) and cannot be moved: run cgfreeze in the target's PID namespace (kubectl debug --target, or --proc of that namespace)", hidden, src)
		}
		if moved == 0 {
			// Only exiting processes are left; let them go.
			time.Sleep(time.Millisecond)
		}
	}
}

// movePID writes one PID to an open cgroup.procs. A process that is gone
// (ESRCH) is not an error; it reports false.
func movePID(dstProcs interface{ Write([]byte) (int, error) }, pid int) (bool, error) {
	for attempt := 1; ; attempt++ {
		_, err := dstProcs.Write([]byte(strconv.Itoa(pid)))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.ESRCH):
			return false, nil
		case errors.Is(err, unix.EINVAL) && attempt < einvalRetries:
			time.Sleep(einvalPause)
		default:
			return false, classify(fmt.Errorf("move PID %d: %w", pid, err))
		}
	}
}

// ignoreCgroupRemoved treats a cgroup that vanished (its last process exited
// and someone removed it) as done.
func ignoreCgroupRemoved(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

// countProcesses counts the processes in a cgroup and its descendants.
func countProcesses(root *mount.Root, cgPath string) (int, error) {
	pids, err := treePIDs(root, cgPath)
	return len(pids), err
}

// treePIDs lists the processes in a cgroup and its descendants, as
// cgroup.procs lists them to the mount's thread: in the caller's PID
// namespace, 0 for a process outside it. A child cgroup removed meanwhile
// lists nothing.
func treePIDs(root *mount.Root, cgPath string) ([]int, error) {
	content, err := root.ReadFile(path.Join(cgPath, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	pids, err := procs.ParsePIDs(strings.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("%s/cgroup.procs: %w", cgPath, err)
	}
	children, err := root.Children(cgPath)
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		more, err := treePIDs(root, path.Join(cgPath, c))
		if err != nil {
			if ignoreCgroupRemoved(err) == nil {
				continue
			}
			return nil, err
		}
		pids = append(pids, more...)
	}
	return pids, nil
}

// Processes lists the processes of the target's cgroup and of every cgroup
// below it (the cgfreeze child of a subtree freeze included): the processes
// a freeze holds. PIDs are as cgfreeze's own PID namespace numbers them;
// hidden counts the processes outside that namespace, which cgroup.procs
// lists as 0 and which are left out of pids.
func (t *Target) Processes() (pids []int, hidden int, err error) {
	err = t.fs.Do(func(root *mount.Root) error {
		all, err := treePIDs(root, t.Path)
		if err != nil {
			return classify(err)
		}
		seen := make(map[int]bool, len(all))
		for _, pid := range all {
			switch {
			case pid == 0:
				hidden++
			case !seen[pid]:
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, hidden, err
}
