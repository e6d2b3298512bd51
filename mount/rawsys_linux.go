//go:build linux

package mount

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls of a hold's periodic look (a tick's drain, the epoll
// instance's non-blocking wait, the re-read of a kept-open cgroup file) go
// straight to the kernel, without the Go runtime's entersyscall. When the
// process has been idle a while, the runtime's monitor thread (sysmon)
// sleeps deeply, and every entersyscall wakes it: it then polls a few
// times 20 µs apart before it sleeps again. That was four of the five
// context switches of each look, and most of an idle hold's CPU
// (docs/design.md, "The hold"). Each call here returns at once: the
// descriptors are non-blocking, or cgroup files whose read takes a mutex
// for a moment, so bypassing the runtime's bookkeeping cannot stall a P for
// long.

// rawRead is read(2) of a non-blocking descriptor (an eventfd, a timerfd,
// an inotify instance).
func rawRead(fd int, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawPreadStart is pread(2) at offset 0, for the re-read of a kept-open
// cgroup file (kernfs restarts the file there). The offset is not a
// parameter: every argument after the count is 0, which reads as offset 0
// whatever the architecture's convention for passing a 64-bit offset.
func rawPreadStart(fd int, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_PREAD64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// rawEpollPoll is epoll_pwait(2) with a timeout of 0: the events ready now,
// without waiting.
func rawEpollPoll(ep int, evs []unix.EpollEvent) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
