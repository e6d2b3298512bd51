//go:build linux

package agent

import (
	"errors"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// forkExec starts exe with args (args[0] is its name), descriptors 0, 1,
// 2, ... of the child being files (a nil file: closed in the child), in
// this process's environment, and returns its PID. Errors are os/exec's:
// "fork/exec exe: ...".
func forkExec(exe string, args []string, files []*os.File) (int, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd() // ^uintptr(0) for a nil file: closed
	}
	pid, err := syscall.ForkExec(exe, args, &syscall.ProcAttr{Env: os.Environ(), Files: fds})
	runtime.KeepAlive(files) // no finalizer closes them before the child has them
	if err != nil {
		return 0, &os.PathError{Op: "fork/exec", Path: exe, Err: err}
	}
	return pid, nil
}

// awaitExit blocks until the child pid has ended, without reaping it.
func awaitExit(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// reap reaps the ended child pid: the signal that killed it, or its exit
// code (-1 when unknown).
func reap(pid int) (os.Signal, int) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, -1
		}
		break
	}
	if ws.Signaled() {
		return ws.Signal(), -1
	}
	return nil, ws.ExitStatus()
}

func kill(pid int, s os.Signal) error {
	sig, ok := s.(syscall.Signal)
	if !ok {
		return errors.New("unsupported signal type")
	}
	return syscall.Kill(pid, sig)
}
