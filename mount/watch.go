//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

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
	f *os.File // nil: a timer (or a fake's eventfd)
	// fake: an eventfd that Fake.Notify writes to, on path p.
	fake   *Fake
	fakeFD int
	p      string
}

// Watch starts watching a file below the root. The change that arms the
// watch is its first read, done here: a change after Watch returns wakes the
// next Wait, even one that comes before Wait is called.
func (r *Root) Watch(p string) *Watcher {
	if r.fake != nil {
		fd, err := r.fake.watch(p)
		if err != nil {
			return &Watcher{}
		}
		return &Watcher{fake: r.fake, fakeFD: fd, p: p}
	}
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
	if w.f == nil && w.fake == nil {
		time.Sleep(d)
		return
	}
	ms := int(d.Milliseconds())
	if ms == 0 {
		ms = 1
	}
	fds := []unix.PollFd{{Events: unix.POLLPRI}}
	if w.fake != nil {
		fds[0] = unix.PollFd{Fd: int32(w.fakeFD), Events: unix.POLLIN}
	} else {
		fds[0].Fd = int32(w.f.Fd())
	}
	n, err := unix.Poll(fds, ms)
	if err != nil && !errors.Is(err, unix.EINTR) {
		time.Sleep(d)
		return
	}
	if n > 0 {
		if w.fake != nil {
			drainEventfd(w.fakeFD)
			return
		}
		w.arm()
	}
}

// Close stops watching.
func (w *Watcher) Close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	if w.fake != nil {
		w.fake.unwatch(w.p, w.fakeFD)
		w.fake = nil
	}
}

func drainEventfd(fd int) {
	var buf [8]byte
	_, _ = unix.Read(fd, buf[:])
}

// Notifier waits on many cgroup files and directories at once, for a
// long watch such as a hold: the files (cgroup.events) wake it with
// POLLPRI as a Watcher's do, and the directories through inotify when a
// child cgroup is created or removed in them (cgroupfs notifies no file of
// that). Its descriptors are the process's: Wait may be called from any
// goroutine, outside FS.Do; Add and Remove open and close files below a
// Root, so inside Do.
type Notifier struct {
	fake    *Fake
	files   map[string]int // path -> fd (a fake's eventfd)
	owned   map[int]*os.File
	ino     int            // inotify instance, -1 until a directory is added
	dirs    map[string]int // path -> watch descriptor
	dirOfWD map[int]string
	// wake is an eventfd that Wake writes to, -1 if none; wakeMu keeps
	// a Wake from another goroutine off a descriptor Close has closed
	// (and the kernel may have given to another file).
	wakeMu sync.Mutex
	wake   int
}

// NewNotifier returns a Notifier that watches nothing yet.
func (r *Root) NewNotifier() *Notifier {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		wake = -1
	}
	return &Notifier{fake: r.fake, files: map[string]int{}, owned: map[int]*os.File{}, ino: -1, dirs: map[string]int{}, dirOfWD: map[int]string{}, wake: wake}
}

// Wake ends the Wait under way, or the next one, at once (with no change).
// It may be called from any goroutine, until Close.
func (n *Notifier) Wake() {
	n.wakeMu.Lock()
	defer n.wakeMu.Unlock()
	if n.wake >= 0 {
		_, _ = unix.Write(n.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// AddFile watches the file p below r, and reads it once to arm the watch.
// A file watched already is left as it is.
func (n *Notifier) AddFile(r *Root, p string) error {
	if _, ok := n.files[p]; ok {
		return nil
	}
	if n.fake != nil {
		fd, err := n.fake.watch(p)
		if err != nil {
			return err
		}
		n.files[p] = fd
		return nil
	}
	f, err := r.Open(p, unix.O_RDONLY)
	if err != nil {
		return err
	}
	fd := int(f.Fd())
	n.files[p], n.owned[fd] = fd, f
	var buf [512]byte
	_, _ = unix.Pread(fd, buf[:], 0)
	return nil
}

// AddDir watches the directory p below r for child cgroups created in it
// or removed from it. It needs /proc (the directory is named to inotify as
// /proc/self/fd/N, the mount being attached nowhere).
func (n *Notifier) AddDir(r *Root, p string) error {
	if _, ok := n.dirs[p]; ok {
		return nil
	}
	if n.ino < 0 {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return fmt.Errorf("inotify: %w", err)
		}
		n.ino = fd
	}
	dir, err := r.Open(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer dir.Close()
	wd, err := unix.InotifyAddWatch(n.ino, "/proc/self/fd/"+strconv.Itoa(int(dir.Fd())), unix.IN_CREATE|unix.IN_DELETE|unix.IN_ONLYDIR)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: p, Err: err}
	}
	n.dirs[p], n.dirOfWD[wd] = wd, p
	return nil
}

// Remove stops watching p (a file or a directory). A removed cgroup's
// files wake poll(2) for good, so a caller removes them.
func (n *Notifier) Remove(p string) {
	if fd, ok := n.files[p]; ok {
		delete(n.files, p)
		if n.fake != nil {
			n.fake.unwatch(p, fd)
		} else {
			_ = n.owned[fd].Close()
			delete(n.owned, fd)
		}
	}
	if wd, ok := n.dirs[p]; ok {
		delete(n.dirs, p)
		delete(n.dirOfWD, wd)
		_, _ = unix.InotifyRmWatch(n.ino, uint32(wd))
	}
}

// Watching tells whether p is watched.
func (n *Notifier) Watching(p string) bool {
	_, file := n.files[p]
	_, dir := n.dirs[p]
	return file || dir
}

// Wait returns the watched paths that changed, after the first change or
// after d, whichever comes first (none then). A file is re-armed, a
// directory's events drained, before Wait returns: a change after that
// wakes the next Wait.
func (n *Notifier) Wait(d time.Duration) ([]string, error) {
	fds := make([]unix.PollFd, 0, len(n.files)+1)
	paths := make([]string, 0, len(n.files))
	for p, fd := range n.files {
		ev := int16(unix.POLLPRI)
		if n.fake != nil {
			ev = unix.POLLIN
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: ev})
		paths = append(paths, p)
	}
	ino, wake := -1, -1
	if n.ino >= 0 {
		ino = len(fds)
		fds = append(fds, unix.PollFd{Fd: int32(n.ino), Events: unix.POLLIN})
	}
	if n.wake >= 0 {
		wake = len(fds)
		fds = append(fds, unix.PollFd{Fd: int32(n.wake), Events: unix.POLLIN})
	}
	ms := int(d.Milliseconds())
	if d > 0 && ms == 0 {
		ms = 1
	}
	if len(fds) == 0 {
		time.Sleep(d)
		return nil, nil
	}
	k, err := unix.Poll(fds, ms)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return nil, nil
		}
		return nil, fmt.Errorf("poll: %w", err)
	}
	if k == 0 {
		return nil, nil
	}
	var changed []string
	for i, pfd := range fds {
		if pfd.Revents == 0 {
			continue
		}
		switch i {
		case ino:
			changed = append(changed, n.drainInotify()...)
			continue
		case wake:
			drainEventfd(n.wake)
			continue
		}
		changed = append(changed, paths[i])
		if n.fake != nil {
			drainEventfd(int(pfd.Fd))
		} else {
			var buf [512]byte
			_, _ = unix.Pread(int(pfd.Fd), buf[:], 0)
		}
	}
	return changed, nil
}

// drainInotify reads the pending inotify events and returns the directories
// they concern (each once); an overflow names every directory.
func (n *Notifier) drainInotify() []string {
	seen := map[string]bool{}
	var buf [4096]byte
	for {
		k, err := unix.Read(n.ino, buf[:])
		if err != nil || k <= 0 {
			break
		}
		for off := 0; off+unix.SizeofInotifyEvent <= k; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				for p := range n.dirs {
					seen[p] = true
				}
			} else if p, ok := n.dirOfWD[int(ev.Wd)]; ok {
				seen[p] = true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	return out
}

// Close stops every watch. Its inotify instance, whose close can wait for
// an RCU grace period, is closed on a goroutine of its own: a caller that
// goes on to thaw does not wait for it.
func (n *Notifier) Close() {
	for p := range n.files {
		n.Remove(p)
	}
	n.wakeMu.Lock()
	if n.wake >= 0 {
		_ = unix.Close(n.wake)
		n.wake = -1
	}
	n.wakeMu.Unlock()
	if n.ino >= 0 {
		go unix.Close(n.ino)
		n.ino = -1
	}
	n.dirs, n.dirOfWD = map[string]int{}, map[int]string{}
}
