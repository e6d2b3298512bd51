// Package faults is a test-only switch that makes cgfreeze die, or fail, at
// a named step of a freeze or a thaw, so that tests can prove that every way
// a run can end leaves the target restored.
//
// It reads the environment variable CGFREEZE_FAULT once, as
// "<step>[:<action>]": at Point(<step>) the process SIGKILLs itself (action
// "kill", the default), SIGKILLs its parent and children first and then
// itself (action "killall": the whole container killed at once, the
// supervising watchdog included), returns an injected error (action
// "fail"; "eopnotsupp" returns one that wraps EOPNOTSUPP, the answer of a
// kernel that cannot do what was asked, such as one without
// CONFIG_INET_DIAG_DESTROY), or sleeps for two seconds
// (action "stall", a window for signals to arrive in). A process with
// CGFREEZE_FAULT unset pays one string comparison per step.
package faults

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is the environment variable that arms a fault.
const Env = "CGFREEZE_FAULT"

// ErrInjected is the error that the "fail" action returns.
var ErrInjected = errors.New("injected fault")

// StallTime is how long the "stall" action sleeps.
const StallTime = 2 * time.Second

var (
	once   sync.Once
	step   string
	action string
	// first: this process is the first of a freeze (the supervisor), which
	// freezes before it hands the hold over: its parent is its caller,
	// which "killall" leaves alone.
	first bool
)

// First marks this process as the supervisor of a freeze, the first
// process: "killall" then kills its children (the holder) and itself, not
// its parent, which is the caller. Faults stay armed in it until Disable
// (it freezes, then hands the hold over and becomes the guard).
func First() { first = true }

func load() {
	step, action = os.Getenv(Env), "kill"
	// Step names hold colons themselves ("freeze:marked").
	if i := strings.LastIndexByte(step, ':'); i >= 0 {
		switch a := step[i+1:]; a {
		case "kill", "killall", "fail", "eopnotsupp", "stall":
			step, action = step[:i], a
		}
	}
}

// Disable switches faults off in this process, whatever the environment
// says: for the supervisor of a freeze, which passes the environment on to
// the holder it watches and must itself survive.
func Disable() {
	once.Do(func() {})
	step = ""
}

// Point marks a step. It returns nil unless CGFREEZE_FAULT names this step
// with the action "fail"; with "kill" it does not return.
func Point(name string) error {
	once.Do(load)
	if step == "" || name != step {
		return nil
	}
	switch action {
	case "killall":
		// The holder's parent is its supervisor (the watchdog); the
		// supervisor's is its caller.
		if !first {
			kill(os.Getppid())
		}
		for _, pid := range children() {
			kill(pid)
		}
		fallthrough
	case "kill":
		// SIGKILL cannot be caught: the same death as the OOM killer's.
		kill(os.Getpid())
		select {} // the signal is on its way
	case "fail":
		return fmt.Errorf("%s: %w", name, ErrInjected)
	case "eopnotsupp":
		return fmt.Errorf("%s: %w: %w", name, ErrInjected, syscall.EOPNOTSUPP)
	case "stall":
		time.Sleep(StallTime)
	}
	return nil
}

// children lists the process's children, from every thread's list.
func children() []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// kill sends SIGKILL to pid (os.Process.Kill: SIGKILL, where the package
// builds on every OS).
func kill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
