package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	"github.com/cgfreeze/cgfreeze/internal/faults"
	"golang.org/x/sys/unix"
)

// The watchdog is a second cgfreeze process, a child of the holder, that
// thaws the target if the holder dies without thawing it (SIGKILL, the OOM
// killer, a panic). It is tied to the holder by a pipe: the holder keeps the
// write end open for its whole life and writes watchdogDone once the target
// is known to be thawed; the kernel closes the pipe when the holder dies,
// however it dies, and the watchdog wakes up on EOF. It runs outside the
// target (cgfreeze refuses a target that holds itself), ignores the signals
// that end a hold, and resolves the target before the freeze, so that its
// recovery needs no lookup of a PID that may be frozen or gone.
//
// It cannot survive what kills it together with the holder: a SIGKILL of
// the whole process group or container. The mark in the cgroup filesystem
// remains, and `cgfreeze thaw` (or the next `cgfreeze freeze`) recovers.

const (
	watchdogCommand = "__watchdog"
	// watchdogDone, written by the holder, says: the target is thawed.
	watchdogDone = 'd'
	// watchdogReady, written by the watchdog, says: target resolved,
	// watching.
	watchdogReady = 'r'
	// watchdogStartLimit bounds the handshake.
	watchdogStartLimit = 10 * time.Second
	// watchdogLockWait is how long the watchdog waits for the kernel to
	// release a dead holder's lock.
	watchdogLockWait = 2 * time.Second
	// watchdogExitLimit bounds the holder's wait for the watchdog to end.
	watchdogExitLimit = 5 * time.Second
)

type watchdog struct {
	cmd  *exec.Cmd
	link *os.File // the holder's end of the pipe
}

// startWatchdog starts the watchdog for the target of c and waits until it
// watches. stdout and stderr are passed on when they are files.
func startWatchdog(c config, stdout, stderr io.Writer) (*watchdog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the watchdog: find cgfreeze's own binary: %w", err)
	}
	watchR, watchW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		_ = watchR.Close()
		_ = watchW.Close()
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	args := []string{watchdogCommand, "--pid=" + fmt.Sprint(c.pid), "--cgroup-version=" + fmt.Sprint(c.cgVersion),
		"--timeout=" + c.timeout.String(), "--output=" + c.output, "--log-level=" + c.logLevel, "--log-format=" + c.logFormat,
		"--proc=" + c.procRoot, "--sys-cgroup=" + c.sysCgroup, "--cgroup-mount=" + c.cgMount}
	cmd := exec.Command(exe, args...)
	// Injected faults are the holder's: the watchdog is what must survive
	// them.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, faults.Env+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.ExtraFiles = []*os.File{watchR, readyW} // fds 3 and 4
	if f, ok := stdout.(*os.File); ok {
		cmd.Stdout = f
	}
	if f, ok := stderr.(*os.File); ok {
		cmd.Stderr = f
	}
	// A process group of its own: Ctrl-C at a terminal signals the
	// holder's group, not the watchdog.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_ = watchR.Close()
	_ = readyW.Close()
	if err != nil {
		_ = watchW.Close()
		_ = readyR.Close()
		return nil, fmt.Errorf("start the watchdog: %w", err)
	}
	wd := &watchdog{cmd: cmd, link: watchW}
	ready := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		n, err := readyR.Read(b)
		_ = readyR.Close()
		if n == 1 && b[0] == watchdogReady {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("the watchdog ended before it watched: %w (see its log above)", err)
	}()
	select {
	case err = <-ready:
	case <-time.After(watchdogStartLimit):
		err = fmt.Errorf("the watchdog did not start within %v", watchdogStartLimit)
	}
	if err != nil {
		wd.stop(false)
		return nil, err
	}
	return wd, nil
}

// stop ends the watchdog: when thawed, the target needs nothing from it and
// it exits; otherwise it takes over as if the holder had died. stop waits
// for it, so that no cgfreeze process outlives a run that thawed.
func (wd *watchdog) stop(thawed bool) {
	if thawed {
		_, _ = wd.link.Write([]byte{watchdogDone})
	}
	_ = wd.link.Close()
	exited := make(chan struct{})
	go func() {
		_ = wd.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(watchdogExitLimit):
	}
}

// runWatchdog is the watchdog process.
func runWatchdog(args []string, stdout, stderr io.Writer) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	c, code, ok := parseFlags("freeze", args, stdout, stderr)
	if !ok {
		return code
	}
	log := newLogger(c, stderr).With().Str("process", "watchdog").Logger()
	ev := &emitter{out: stdout, json: c.output == "json"}
	for fd := 3; fd <= 4; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fail(ev, log, errors.New("the watchdog runs only as a child of a holding cgfreeze, which passes it fds 3 and 4"))
		}
	}
	link, ready := os.NewFile(3, "holder"), os.NewFile(4, "ready")
	target, err := freezer.Resolve(freezer.Options{PID: c.pid, ProcRoot: c.procRoot, SysCgroup: c.sysCgroup, Version: c.cgVersion, CgroupMount: c.cgMount})
	if err != nil {
		return fail(ev, log, err)
	}
	defer func() {
		if err := target.Close(); err != nil {
			log.Warn().Err(err).Msg("releasing the cgroup mount")
		}
	}()
	if _, err := ready.Write([]byte{watchdogReady}); err != nil {
		return fail(ev, log, fmt.Errorf("tell the holder: %w", err))
	}
	_ = ready.Close()

	done := false
	buf := make([]byte, 16)
	for {
		n, err := link.Read(buf)
		for _, b := range buf[:n] {
			done = done || b == watchdogDone
		}
		if err != nil {
			break // EOF: the holder has ended, one way or another
		}
	}
	if done {
		return exitOK
	}
	log.Warn().Msg("the holder ended without thawing the target: recovering")
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	rec, err := freezer.RecoverReleased(ctx, target, watchdogLockWait)
	if err != nil {
		return fail(ev, log, err)
	}
	e := base(target)
	e.Event, e.State, e.Reason = "recovered", "thawed", "watchdog"
	e.ElapsedMS = ms(time.Since(start))
	if !rec.Recovered {
		e.Event = "nothing_to_thaw"
	} else {
		e.Strategy, e.Holder = string(rec.Strategy), rec.Holder
	}
	ev.emit(e)
	return exitOK
}
