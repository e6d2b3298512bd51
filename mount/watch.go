package mount

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher wakes up when a cgroup file such as cgroup.events changes.
//
// It polls the open file itself: kernfs, the cgroup file system, reports a
// change of cgroup.events to poll(2) as POLLPRI|POLLERR, and re-arms when
// the file is read again. inotify would do too, but closing an inotify
// instance waits for an SRCU grace period (some 15 ms here), paid at every
// wait. Where the file cannot be opened the Watcher degrades to a timer, so
// callers always re-read the file after Wait and bound their loops
// themselves.
type Watcher struct {
	f *os.File // nil: a timer
}

// Watch starts watching a file below the root. The change that arms the
// watch is its first read, done here: a change after Watch returns wakes the
// next Wait, even one that comes before Wait is called.
func (r *Root) Watch(p string) *Watcher {
	f, err := r.Open(p, unix.O_RDONLY)
	if err != nil {
		return &Watcher{}
	}
	w := &Watcher{f: f}
	w.arm()
	return w
}

func (w *Watcher) arm() {
	var buf [512]byte
	_, _ = unix.Pread(int(w.f.Fd()), buf[:], 0)
}

// Wait returns after the file changed or after d, whichever comes first.
func (w *Watcher) Wait(d time.Duration) {
	if d <= 0 {
		return
	}
	if w.f == nil {
		time.Sleep(d)
		return
	}
	ms := int(d.Milliseconds())
	if ms == 0 {
		ms = 1
	}
	fds := []unix.PollFd{{Fd: int32(w.f.Fd()), Events: unix.POLLPRI}}
	n, err := unix.Poll(fds, ms)
	if err != nil && !errors.Is(err, unix.EINTR) {
		time.Sleep(d)
		return
	}
	if n > 0 {
		w.arm()
	}
}

// Close stops watching.
func (w *Watcher) Close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
}
