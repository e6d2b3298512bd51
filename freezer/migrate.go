//go:build linux

package freezer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// einvalRetries and einvalPause: a migration can fail with EINVAL for a
// moment (a task in the middle of fork or exit); runc retries so too.
// lingerPauseMin and lingerPauseMax bound the back-off of a migration
// whose source lists only processes it has moved already: tasks that are
// exiting, which the kernel still lists (and lets be written) until they
// are gone. It doubles from the first to the second while nothing new is
// listed.
const (
	einvalRetries  = 5
	einvalPause    = 30 * time.Millisecond
	lingerPauseMin = 500 * time.Microsecond
	lingerPauseMax = 20 * time.Millisecond
)

// migrate moves every process of src (its own processes, not those of its
// children) into dst, one write(2) of one PID at a time, until src lists
// none: a process that forks meanwhile is caught by the next round.
// halfway is the fault point passed once half of the first round moved.
// It returns how many processes it moved, each counted once.
func migrate(ctx context.Context, root *mount.Root, src, dst, halfway string) (total int, err error) {
	if src == dst {
		return 0, nil
	}
	dstProcs, err := root.OpenWrite(path.Join(dst, "cgroup.procs"))
	if err != nil {
		return 0, classify(err)
	}
	defer func() { _ = dstProcs.Close() }()
	srcFile := path.Join(src, "cgroup.procs")
	list := func() ([]int, error) {
		content, err := root.ReadFile(srcFile)
		if err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return nil, fmt.Errorf("%w: %s is a threaded cgroup", ErrUnsafeTarget, src)
			}
			return nil, classify(err)
		}
		pids, err := procs.ParsePIDs(strings.NewReader(content))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", srcFile, err)
		}
		return pids, nil
	}
	move := func(pid int) (bool, error) {
		ok, err := movePID(dstProcs, pid)
		if errors.Is(err, unix.EOPNOTSUPP) {
			return false, fmt.Errorf("%w: %s cannot take processes (a threaded cgroup, or a domain under a threaded one): %w", ErrUnsafeTarget, dst, err)
		}
		return ok, err
	}
	return migrateLoop(ctx, src, list, move, halfway, time.Sleep)
}

// migrateLoop is migrate's loop: list returns the PIDs that src lists,
// move writes one into the destination (false: it was gone), sleep pauses.
// A PID is counted the first time it moves; one listed again after it
// moved (an exiting task, which the kernel lists and lets be written until
// it is gone) is written again but not counted, and a round that moves
// nothing new sleeps, with a back-off from lingerPauseMin to
// lingerPauseMax, instead of spinning on it.
func migrateLoop(ctx context.Context, src string, list func() ([]int, error), move func(int) (bool, error), halfway string, sleep func(time.Duration)) (int, error) {
	moved := map[int]bool{}
	pause := lingerPauseMin
	for first := true; ; first = false {
		pids, err := list()
		if err != nil {
			return len(moved), err
		}
		if len(pids) == 0 {
			return len(moved), nil
		}
		if ctx.Err() != nil {
			return len(moved), fmt.Errorf("%d processes still in %s: %w", len(pids), src, context.Cause(ctx))
		}
		fresh, hidden := 0, 0
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
			ok, err := move(pid)
			if err != nil {
				return len(moved), err
			}
			if ok && !moved[pid] {
				moved[pid] = true
				fresh++
			}
			if first && len(seen) == (len(pids)+1)/2 {
				if err := faults.Point(halfway); err != nil {
					return len(moved), err
				}
			}
		}
		if hidden == len(pids) {
			return len(moved), fmt.Errorf("%d processes in %s are outside cgfreeze's PID namespace (cgroup.procs lists them as 0) and cannot be moved: run cgfreeze in the target's PID namespace (kubectl debug --target, or --proc of that namespace)", hidden, src)
		}
		if fresh > 0 {
			pause = lingerPauseMin
			continue
		}
		// Only exiting processes are left; let them go.
		sleep(pause)
		pause = min(2*pause, lingerPauseMax)
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
