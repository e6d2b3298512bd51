//go:build linux

package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The holder starts at idle priority (docs/design.md, "The holder starts
// first"): its Go runtime start and its wait for the word run beside the
// supervisor's freeze, and on a machine of few CPUs they took a CPU from the
// target's tasks, which the kernel must run into the freezer before it says
// FROZEN. At SCHED_IDLE the holder runs only on a CPU nothing else wants;
// its priority comes back (SCHED_OTHER, the nice it had) once the freeze is
// confirmed, from the supervisor (RestorePriority) and from the holder
// itself whenever it must act (RestoreOwnPriority), so that no holder does
// real work at idle priority on a busy node.

// IdleStartEnv marks, in the holder's environment, a holder started at idle
// priority: it then gives its threads their priority back itself when it
// must act (RestoreOwnPriority). A holder without it leaves its threads as
// it found them: a cgfreeze run at idle priority on purpose stays there.
const IdleStartEnv = "CGFREEZE_IDLE_START"

// restorePasses bounds the passes over a process's threads: each sets back
// the threads it finds at idle priority, and the Go runtime may start a
// thread (at the priority of the one that starts it) meanwhile; a pass that
// finds none at idle ends it.
const restorePasses = 10

// idleStartAllowed says whether the holder may start at idle priority: only
// when this process can give it its priority back (CAP_SYS_NICE in its
// effective set: leaving SCHED_IDLE needs it where RLIMIT_NICE does not
// allow it), when it runs SCHED_OTHER itself (a cgfreeze run at another
// policy on purpose passes it on unchanged), and when /proc is its own PID
// namespace's (the threads are found under /proc/<pid>/task).
func idleStartAllowed() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	if data[unix.CAP_SYS_NICE/32].Effective&(1<<(unix.CAP_SYS_NICE%32)) == 0 {
		return false
	}
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil || attr.Policy != unix.SCHED_NORMAL {
		return false
	}
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// setIdle moves the thread tid to SCHED_IDLE, keeping its nice value.
func setIdle(tid int) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr of thread %d: %w", tid, err)
	}
	attr.Policy, attr.Flags = unix.SCHED_IDLE, 0
	if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
		return fmt.Errorf("sched_setattr SCHED_IDLE of thread %d: %w", tid, err)
	}
	return nil
}

// restoreThreads sets every thread of the process pid found at SCHED_IDLE
// back to SCHED_OTHER (its nice value kept), in passes until one finds none
// at idle (restorePasses at most).
func restoreThreads(pid int) error {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	for range restorePasses {
		tids, err := readTasks(dir)
		if err != nil {
			return err
		}
		changed := 0
		for _, tid := range tids {
			attr, err := unix.SchedGetAttr(tid, 0)
			if err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread ended
				}
				return fmt.Errorf("sched_getattr of thread %d of process %d: %w", tid, pid, err)
			}
			if attr.Policy != unix.SCHED_IDLE {
				continue
			}
			attr.Policy, attr.Flags = unix.SCHED_NORMAL, 0
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("sched_setattr SCHED_OTHER of thread %d of process %d: %w", tid, pid, err)
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return fmt.Errorf("threads of process %d still at idle priority after %d passes over %s", pid, restorePasses, dir)
}

// readTasks lists the thread IDs in a /proc/<pid>/task directory.
func readTasks(dir string) ([]int, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// RestoreOwnPriority gives this process's threads their priority back when
// its supervisor started it at idle priority (IdleStartEnv); otherwise it
// does nothing. The holder calls it whenever it must act: on "go" (it
// freezes), on "abort", on the hand-over, and when its supervisor died (it
// recovers).
func RestoreOwnPriority() error {
	if os.Getenv(IdleStartEnv) == "" {
		return nil
	}
	return restoreThreads(os.Getpid())
}
