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
const (
	einvalRetries = 5
	einvalPause   = 30 * time.Millisecond
)

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
