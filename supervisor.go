package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/cgfreeze/cgfreeze/internal/faults"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// A freeze runs as two processes. The one started by the user (or the
// runtime: the ephemeral container's first process) is the supervisor,
// the watchdog of the freeze. It resolves the target, then starts the
// holder, `cgfreeze __hold`, its own binary as its child, which freezes,
// holds and thaws. The holder keeps the write end of a pipe and writes
// holderDone once the target is known to be thawed; when the holder ends
// without it (SIGKILL, the OOM killer, a panic, a failed thaw) the
// supervisor undoes the freeze, as `cgfreeze thaw` does, from the target it
// resolved before anything changed.
//
// The supervisor is the parent, not the child, because a runtime kills
// every process of a container whose first process exits when that
// container shares another's PID namespace (runc, containerd's shim): the
// ephemeral container's first process must be the one that outlives the
// other. The supervisor forwards SIGINT, SIGTERM and SIGHUP to the holder
// and does nothing else while it holds: it is small and idle, so the OOM
// killer picks the holder first.
//
// It cannot survive what kills it together with the holder: a SIGKILL of
// both, or of the whole container. The mark stays in the cgroup file
// system, and `cgfreeze thaw` (or the next `cgfreeze freeze`) recovers.

const (
	holdCommand = "__hold"
	// holderDone, written by the holder, says: the target is thawed.
	holderDone = 'd'
	// holderLockWait is how long the supervisor waits for the kernel to
	// release a dead holder's lock.
	holderLockWait = 2 * time.Second
	// holderFD and parentFD are the descriptors the holder inherits: the
	// pipe to the supervisor, and a pidfd of the supervisor's parent for
	// --lease parent.
	holderFD = 3
	parentFD = 4
)

// holderArgs is the command line of the holder: the supervisor's flags,
// with the target as the supervisor resolved it.
func holderArgs(c config, withParent bool) []string {
	args := []string{holdCommand,
		"--pid=" + strconv.Itoa(c.pid), "--cgroup-version=" + strconv.Itoa(c.cgVersion),
		"--duration=" + c.duration.String(), "--timeout=" + c.timeout.String(),
		"--output=" + c.output, "--log-level=" + c.logLevel, "--log-format=" + c.logFormat,
		"--proc=" + c.procRoot, "--sys-cgroup=" + c.sysCgroup, "--cgroup-mount=" + c.cgMount}
	var leases []string
	for _, l := range c.leases {
		if l != leaseParent {
			leases = append(leases, l)
		}
	}
	if len(leases) > 0 {
		args = append(args, "--lease="+strings.Join(leases, ","))
	}
	if withParent {
		args = append(args, "--parent-pidfd="+strconv.Itoa(parentFD))
	}
	if d := c.drop; d.mode != dropOff {
		args = append(args, "--drop-connections="+d.mode, "--drop-local-port="+d.localPorts,
			"--drop-remote-port="+d.remotePorts, "--drop-direction="+d.direction)
	}
	return args
}

// supervise runs a freeze: it starts the holder and watches it.
func supervise(c config, ev *emitter, log zerolog.Logger, t *freezer.Target, sigs <-chan os.Signal, stdin io.Reader, stdout, stderr io.Writer) int {
	// Injected faults are the holder's: the supervisor is what must
	// survive them. The holder inherits the environment.
	faults.Disable()
	exe, err := os.Executable()
	if err != nil {
		return fail(ev, log, fmt.Errorf("find cgfreeze's own binary to start the holder: %w", err))
	}
	var parent *os.File
	for _, l := range c.leases {
		if l == leaseParent {
			if parent, err = openParent(); err != nil {
				return fail(ev, log, err)
			}
			defer parent.Close()
		}
	}
	doneR, doneW, err := os.Pipe()
	if err != nil {
		return fail(ev, log, fmt.Errorf("start the holder: %w", err))
	}
	defer doneR.Close()
	cmd := exec.Command(exe, holderArgs(c, parent != nil)...)
	cmd.ExtraFiles = []*os.File{doneW}
	if parent != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, parent)
	}
	// The holder reads stdin for --lease stdin; the supervisor never does.
	if f, ok := stdin.(*os.File); ok {
		cmd.Stdin = f
	}
	if f, ok := stdout.(*os.File); ok {
		cmd.Stdout = f
	}
	if f, ok := stderr.(*os.File); ok {
		cmd.Stderr = f
	}
	// The holder stays in the supervisor's process group: a holder in a
	// background group that reads a terminal (--lease stdin) would be
	// stopped by SIGTTIN. A terminal's Ctrl-C then reaches both, and the
	// holder ignores the forwarded copy as it ignores any second signal.
	err = cmd.Start()
	_ = doneW.Close()
	if err != nil {
		return fail(ev, log, fmt.Errorf("start the holder: %w", err))
	}

	done := make(chan bool, 1)
	go func() {
		var buf [16]byte
		seen := false
		for {
			n, err := doneR.Read(buf[:])
			seen = seen || strings.IndexByte(string(buf[:n]), holderDone) >= 0
			if err != nil {
				break // EOF: the holder has ended, one way or another
			}
		}
		done <- seen
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	for running := true; running; {
		select {
		case s := <-sigs:
			// The holder may be gone already; then there is nothing to
			// forward to.
			_ = cmd.Process.Signal(s)
		case <-exited:
			running = false
		}
	}
	thawed := <-done
	code := cmd.ProcessState.ExitCode()
	if thawed {
		return code
	}

	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		log.Warn().Str("signal", ws.Signal().String()).Msg("the holder died without thawing the target: recovering")
		code = exitHolderDied
	} else {
		log.Warn().Int("exit_code", code).Msg("the holder ended without thawing the target: recovering")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	rec, err := freezer.RecoverReleased(ctx, t, holderLockWait)
	if err != nil {
		return fail(ev, log, err)
	}
	e := base(t)
	e.Event, e.State, e.Reason = "recovered", "thawed", "watchdog"
	e.ElapsedMS = ms(time.Since(start))
	if rec.Recovered {
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
	} else {
		e.Event = "nothing_to_thaw"
	}
	ev.emit(e)
	return code
}

// holderLink is the holder's end of the pipe to its supervisor.
func holderLink() (*os.File, error) {
	if _, err := unix.FcntlInt(holderFD, unix.F_GETFD, 0); err != nil {
		return nil, errors.New("the holder runs only as a child of a freezing cgfreeze, which passes it fd 3")
	}
	return os.NewFile(holderFD, "supervisor"), nil
}
