package mount

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher wakes up when a cgroup file such as cgroup.events changes. Where
// inotify is not available it degrades to a timer, so callers always re-read
// the file after Wait and bound their loops themselves.
type Watcher struct {
	fd int // inotify descriptor, or -1
}

// Watch starts watching a file below the root for modification.
func (r *Root) Watch(p string) *Watcher {
	f, err := r.Open(p, unix.O_RDONLY)
	if err != nil {
		return &Watcher{fd: -1}
	}
	defer f.Close()
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return &Watcher{fd: -1}
	}
	// The file lives in a detached mount, reachable only through the
	// descriptor; inotify takes a path, which /proc/self/fd provides.
	if _, err := unix.InotifyAddWatch(ifd, procSelfFD(f), unix.IN_MODIFY); err != nil {
		unix.Close(ifd)
		return &Watcher{fd: -1}
	}
	return &Watcher{fd: ifd}
}

// Wait returns after the file changed or after d, whichever comes first.
func (w *Watcher) Wait(d time.Duration) {
	if d <= 0 {
		return
	}
	if w.fd < 0 {
		time.Sleep(d)
		return
	}
	ms := int(d.Milliseconds())
	if ms == 0 {
		ms = 1
	}
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, ms)
	if err != nil && !errors.Is(err, unix.EINTR) {
		time.Sleep(d)
		return
	}
	if n > 0 {
		buf := make([]byte, 4096)
		for {
			if _, err := unix.Read(w.fd, buf); err != nil {
				break
			}
		}
	}
}

// Close stops watching.
func (w *Watcher) Close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
