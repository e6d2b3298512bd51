package main

import (
	"bufio"
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
	// goWord starts the supervisor's word to an early holder: go on, with
	// the target at this (quoted) path.
	goWord = "go "
	// holderAbortLimit bounds the wait for an early holder to end when
	// the supervisor gives up.
	holderAbortLimit = 10 * time.Second
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

// holderProc is a started holder.
type holderProc struct {
	cmd    *exec.Cmd
	doneR  *os.File // the supervisor's end of the holder's pipe
	parent *os.File // the pidfd for --lease parent, or nil
	// goW, while the holder waits for it (an early start), is the pipe on
	// which the supervisor says whether to go on.
	goW *os.File
}

// startHolder starts the holder. With early, it starts before the
// supervisor has resolved the target: the holder resolves it too, at the
// same time, and then waits for the supervisor's word (proceed or abort)
// before it changes anything. The target is the same process for both
// (--pid, given or the default, not --container-id, whose selection only the
// supervisor makes). This saves the holder's start and resolution, some 4
// ms, from the time to frozen; and when the supervisor cannot resolve the
// target, it reports why and the holder ends without a word.
func startHolder(c config, stdin io.Reader, stdout, stderr io.Writer, early bool) (*holderProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find cgfreeze's own binary to start the holder: %w", err)
	}
	h := &holderProc{}
	for _, l := range c.leases {
		if l == leaseParent {
			if h.parent, err = openParent(); err != nil {
				return nil, err
			}
		}
	}
	doneR, doneW, err := os.Pipe()
	if err != nil {
		h.close()
		return nil, fmt.Errorf("start the holder: %w", err)
	}
	h.doneR = doneR
	defer doneW.Close()
	args := holderArgs(c, h.parent != nil)
	extra := []*os.File{doneW}
	if h.parent != nil {
		extra = append(extra, h.parent)
	}
	if early {
		goR, goW, err := os.Pipe()
		if err != nil {
			h.close()
			return nil, fmt.Errorf("start the holder: %w", err)
		}
		defer goR.Close()
		h.goW = goW
		args = append(args, "--go-fd="+strconv.Itoa(3+len(extra)))
		extra = append(extra, goR)
	}
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = extra
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
	if err := cmd.Start(); err != nil {
		h.close()
		return nil, fmt.Errorf("start the holder: %w", err)
	}
	h.cmd = cmd
	return h, nil
}

// proceed tells a holder that waits for it the target the supervisor
// resolved: the holder goes on if it resolved the same.
func (h *holderProc) proceed(t *freezer.Target) error {
	if h.goW == nil {
		return nil
	}
	_, err := h.goW.WriteString(goWord + strconv.Quote(t.Path) + "\n")
	_ = h.goW.Close()
	h.goW = nil
	return err
}

// abort tells a holder that waits for it that the supervisor gave up, and
// waits for it to end: it changed nothing and says nothing.
func (h *holderProc) abort() {
	if h.goW != nil {
		_ = h.goW.Close()
		h.goW = nil
	}
	exited := make(chan struct{})
	go func() {
		_ = h.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(holderAbortLimit):
		_ = h.cmd.Process.Kill()
		<-exited
	}
	h.close()
}

func (h *holderProc) close() {
	for _, f := range []*os.File{h.doneR, h.parent, h.goW} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// awaitSupervisor is the early holder's wait for its supervisor's word. It
// returns the target path the supervisor resolved, or ok false when the
// supervisor gave up or died.
func awaitSupervisor(fd int) (path string, ok bool) {
	f := os.NewFile(uintptr(fd), "supervisor's word")
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	rest, found := strings.CutPrefix(strings.TrimSuffix(line, "\n"), goWord)
	if err != nil || !found {
		return "", false
	}
	path, err = strconv.Unquote(rest)
	return path, err == nil
}

// supervise runs a freeze: it starts the holder (unless it started early)
// and watches it.
func supervise(c config, ev *emitter, log zerolog.Logger, t *freezer.Target, sigs <-chan os.Signal, h *holderProc, stdin io.Reader, stdout, stderr io.Writer) int {
	// Injected faults are the holder's: the supervisor is what must
	// survive them. The holder inherits the environment.
	faults.Disable()
	if h == nil {
		var err error
		if h, err = startHolder(c, stdin, stdout, stderr, false); err != nil {
			return fail(ev, log, err)
		}
	}
	defer h.close()
	if err := h.proceed(t); err != nil {
		log.Warn().Err(err).Msg("telling the holder to go on")
	}
	cmd, doneR := h.cmd, h.doneR

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
