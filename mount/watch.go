//go:build linux

package mount

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// first is what the read that armed the watch read, until Read
	// hands it out; ok tells that it was read.
	first   []byte
	firstOK bool
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
	n, err := unix.Pread(int(w.f.Fd()), buf[:], 0)
	if err == nil && n < len(buf) {
		w.first, w.firstOK = append(w.first[:0], buf[:n]...), true
	}
}

// Read returns the watched file's content without surrounding white space,
// read from its start through the watch's own descriptor (which re-arms
// the watch): the first call returns what the arming read at Watch read,
// so a caller that reads right after Watch reads the file once. ok is
// false when it cannot (a timer or a fake's watch, a read error, a file
// longer than 512 bytes): the caller reads the file itself.
func (w *Watcher) Read() (content string, ok bool) {
	if w.f == nil {
		return "", false
	}
	if w.firstOK {
		w.firstOK = false
		return strings.TrimSpace(string(w.first)), true
	}
	var buf [512]byte
	n, err := unix.Pread(int(w.f.Fd()), buf[:], 0)
	if err != nil || n == len(buf) {
		return "", false
	}
	return strings.TrimSpace(string(buf[:n])), true
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
	// ppoll, not poll: a wait shorter than a millisecond (a freeze's first
	// look again, freezer.waitFrozen) must not round up to one.
	ts := unix.NsecToTimespec(d.Nanoseconds())
	fds := []unix.PollFd{{Events: unix.POLLPRI}}
	if w.fake != nil {
		fds[0] = unix.PollFd{Fd: int32(w.fakeFD), Events: unix.POLLIN}
	} else {
		fds[0].Fd = int32(w.f.Fd())
	}
	n, err := unix.Ppoll(fds, &ts, nil)
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

// closeInotify closes a Notifier's inotify instance, whose watches are
// removed, at once on a goroutine of its own (Close); a variable for the
// test that looks at what is left in it.
//
// The close flushes the kernel's mark reaper, which frees the removed marks
// only after an SRCU grace period (fsnotify_destroy_group): 3 to 7 ms here,
// and the process's exit waits for it as long as it is not over, whoever
// closes. So the grace period is started as the watches go, on the side,
// and not left to the reaper's own start a jiffy later or to the exit: a
// holder that thaws 5000 processes and exits 2.5 ms after its hold ended
// waited 3.1 ms in its exit for a reaper that the exit itself had started.
var closeInotify = func(fd int) { go func() { _ = unix.Close(fd) }() }

func drainEventfd(fd int) {
	var buf [8]byte
	_, _ = rawRead(fd, buf[:])
}

// Notifier waits on many cgroup files and directories at once, for a
// long watch such as a hold: the files (cgroup.events) wake it with
// POLLPRI as a Watcher's do, and the directories through inotify when a
// child cgroup is created or removed in them (cgroupfs notifies no file of
// that). Its descriptors are the process's: Wait may be called from any
// goroutine, outside FS.Do; Add and Remove open and close files below a
// Root, so inside Do.
//
// Everything it watches sits in one epoll instance of its own, which is
// itself registered with the Go runtime's network poller: a Wait parks its
// goroutine there instead of blocking an OS thread in poll(2). A thread
// blocked in a system call keeps the runtime's monitor thread (sysmon)
// waking every 20 µs to 10 ms to take its P back, which cost an idle hold
// most of its CPU (docs/design.md, "The hold"); a parked goroutine lets
// the whole process sleep until an event or a timer.
type Notifier struct {
	fake    *Fake
	files   map[string]int // path -> fd (a fake's eventfd)
	pathOf  map[int]string // fd -> path
	owned   map[int]*os.File
	ino     int            // inotify instance, -1 until a directory is added
	dirs    map[string]int // path -> watch descriptor
	dirOfWD map[int]string
	// ep is the epoll instance (-1 if none could be made: Wait then
	// sleeps), epf the same descriptor as the runtime's poller knows it,
	// nil if the poller refused it (Wait then blocks in epoll_wait).
	ep  int
	epf *os.File
	rc  syscall.RawConn
	evs []unix.EpollEvent
	// wake is an eventfd that Wake writes to, -1 if none; wakeMu keeps
	// a Wake from another goroutine off a descriptor Close has closed
	// (and the kernel may have given to another file).
	wakeMu sync.Mutex
	wake   int
	// tick is a timerfd that ends a Wait every period (SetTick), -1 if
	// none; ticked tells that it did since Ticked was last called.
	tick   int
	ticked bool
	// deadlineSet: the poller has a read deadline on epf from the last
	// wait; ready, got and werr are epollWait's callback and its result,
	// kept here so that a wait allocates nothing.
	deadlineSet bool
	ready       func(uintptr) bool
	got         int
	werr        error
}

// NewNotifier returns a Notifier that watches nothing yet.
func (r *Root) NewNotifier() *Notifier {
	n := &Notifier{fake: r.fake, files: map[string]int{}, pathOf: map[int]string{}, owned: map[int]*os.File{}, ino: -1, dirs: map[string]int{}, dirOfWD: map[int]string{}, ep: -1, wake: -1, tick: -1}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return n
	}
	n.ep = ep
	// Non-blocking, so that os.NewFile hands it to the runtime's poller
	// (epoll_wait itself only heeds its timeout).
	if unix.SetNonblock(ep, true) == nil {
		f := os.NewFile(uintptr(ep), "epoll")
		if rc, err := f.SyscallConn(); err == nil && f.SetReadDeadline(time.Time{}) == nil {
			n.epf, n.rc = f, rc
		} else {
			// Not pollable: keep the descriptor, drop the File
			// without closing it.
			n.ep, err = unix.Dup(ep)
			_ = f.Close()
			if err != nil {
				n.ep = -1
				return n
			}
			unix.CloseOnExec(n.ep)
		}
	}
	if wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err == nil {
		if n.add(wake, unix.EPOLLIN) == nil {
			n.wake = wake
		} else {
			_ = unix.Close(wake)
		}
	}
	return n
}

// add puts fd into the epoll instance, for events.
func (n *Notifier) add(fd int, events uint32) error {
	if n.ep < 0 {
		return errors.New("no epoll instance")
	}
	return unix.EpollCtl(n.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
}

// SetTick makes Wait return every period (Ticked then tells so), from a
// timerfd in the Notifier's epoll instance: a periodic look that wakes
// nothing but the goroutine that waits. A timer of the Go runtime would
// also wake its monitor thread (sysmon), which sleeps until the next timer
// when the process is idle: a second wake-up at every period.
func (n *Notifier) SetTick(period time.Duration) error {
	if n.ep < 0 || n.tick >= 0 {
		return errors.New("no epoll instance, or a tick set already")
	}
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("timerfd: %w", err)
	}
	ts := unix.NsecToTimespec(period.Nanoseconds())
	if err := unix.TimerfdSettime(fd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("timerfd: %w", err)
	}
	if err := n.add(fd, unix.EPOLLIN); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("epoll timerfd: %w", err)
	}
	n.tick = fd
	return nil
}

// Ticked tells whether the tick (SetTick) came since the last call.
func (n *Notifier) Ticked() bool {
	t := n.ticked
	n.ticked = false
	return t
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
		if err := n.add(fd, unix.EPOLLIN); err != nil {
			n.fake.unwatch(p, fd)
			return fmt.Errorf("epoll %s: %w", p, err)
		}
		n.files[p], n.pathOf[fd] = fd, p
		return nil
	}
	f, err := r.Open(p, unix.O_RDONLY)
	if err != nil {
		return err
	}
	fd := int(f.Fd())
	// kernfs reports a change as POLLPRI|POLLERR (and the file as
	// always readable, so not POLLIN).
	if err := n.add(fd, unix.EPOLLPRI); err != nil {
		_ = f.Close()
		return &os.PathError{Op: "epoll_ctl", Path: p, Err: err}
	}
	n.files[p], n.pathOf[fd], n.owned[fd] = fd, p, f
	var buf [512]byte
	_, _ = unix.Pread(fd, buf[:], 0)
	return nil
}

// AddDir watches the directory p below r for child cgroups created in it
// or removed from it. It needs /proc (the directory is named to inotify as
// /proc/self/fd/N, the mount being attached nowhere).
func (n *Notifier) AddDir(r *Root, p string) error {
	return n.addInotify(r, p, unix.IN_CREATE|unix.IN_DELETE|unix.IN_ONLYDIR, true)
}

// AddWrites watches the file p below r for write(2) calls to it (inotify's
// IN_MODIFY), such as a PID written to cgroup.procs, which cgroupfs
// notifies in no other way. A change the kernel makes without a write (a
// process forked into the cgroup, or cloned into it with
// CLONE_INTO_CGROUP) is not seen: callers still look now and then.
func (n *Notifier) AddWrites(r *Root, p string) error {
	return n.addInotify(r, p, unix.IN_MODIFY, false)
}

func (n *Notifier) addInotify(r *Root, p string, mask uint32, dir bool) error {
	if _, ok := n.dirs[p]; ok {
		return nil
	}
	if n.ino < 0 {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return fmt.Errorf("inotify: %w", err)
		}
		if err := n.add(fd, unix.EPOLLIN); err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("epoll inotify: %w", err)
		}
		n.ino = fd
	}
	flags := unix.O_RDONLY
	if dir {
		flags |= unix.O_DIRECTORY
	}
	f, err := r.Open(p, flags)
	if err != nil {
		return err
	}
	defer f.Close()
	wd, err := unix.InotifyAddWatch(n.ino, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), mask)
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
		delete(n.pathOf, fd)
		_ = unix.EpollCtl(n.ep, unix.EPOLL_CTL_DEL, fd, nil)
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

// NoLimit as Wait's d waits for a change, the tick or Wake, however long
// that takes.
const NoLimit time.Duration = -1

// Wait returns the watched paths that changed, after the first change or
// after d, whichever comes first (none then); d of 0 only looks, a d below
// 0 (NoLimit) has no time limit. A file is re-armed, a directory's events
// drained, before Wait returns: a change after that wakes the next Wait.
//
// A Wait with no limit sets no timer of the Go runtime: an idle process
// whose only wake-ups are the tick (SetTick) lets the runtime's monitor
// thread sleep through them.
func (n *Notifier) Wait(d time.Duration) ([]string, error) {
	if n.ep < 0 {
		if d < 0 {
			return nil, errors.New("wait with no limit: no epoll instance")
		}
		time.Sleep(d)
		return nil, nil
	}
	if want := len(n.files) + 3; len(n.evs) < want {
		n.evs = make([]unix.EpollEvent, want)
	}
	got, err := n.epollWait(d)
	if err != nil || got == 0 {
		return nil, err
	}
	var changed []string
	for _, ev := range n.evs[:got] {
		fd := int(ev.Fd)
		switch fd {
		case n.ino:
			changed = append(changed, n.drainInotify()...)
			continue
		case n.wake:
			drainEventfd(n.wake)
			continue
		case n.tick:
			drainEventfd(n.tick) // a timerfd reads as 8 bytes too
			n.ticked = true
			continue
		}
		p, ok := n.pathOf[fd]
		if !ok {
			continue
		}
		changed = append(changed, p)
		if n.fake != nil {
			drainEventfd(fd)
		} else {
			var buf [512]byte
			_, _ = rawPreadStart(fd, buf[:])
		}
	}
	return changed, nil
}

// epollWait waits up to d for events into n.evs and returns how many came.
// It allocates nothing and, for the same deadline as the last wait (a hold
// waits with NoLimit every time), makes no call to the poller's deadline:
// it runs at every tick of a long hold, whose CPU is the cost of each
// wake-up (docs/design.md, "The hold").
func (n *Notifier) epollWait(d time.Duration) (int, error) {
	if d == 0 {
		return n.epollResult(rawEpollPoll(n.ep, n.evs)) // rawsys_linux.go: why
	}
	if n.rc == nil {
		ms := -1 // NoLimit
		if d > 0 {
			ms = max(int(d.Milliseconds()), 1)
		}
		return n.epollResult(unix.EpollWait(n.ep, n.evs, ms))
	}
	var deadline time.Time // none, for NoLimit
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	if !deadline.IsZero() || n.deadlineSet {
		if err := n.epf.SetReadDeadline(deadline); err != nil {
			return 0, fmt.Errorf("epoll deadline: %w", err)
		}
		n.deadlineSet = !deadline.IsZero()
	}
	if n.ready == nil {
		n.ready = n.pollReady // one method value, made once
	}
	n.got, n.werr = 0, nil
	err := n.rc.Read(n.ready)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("wait for epoll: %w", err)
	}
	return n.got, n.werr
}

// pollReady is the runtime poller's callback of epollWait: it takes the
// events ready now and tells the poller to park the goroutine when there
// are none.
func (n *Notifier) pollReady(uintptr) bool {
	n.got, n.werr = n.epollResult(rawEpollPoll(n.ep, n.evs))
	return n.got > 0 || n.werr != nil
}

// epollResult is an epoll_wait's result as epollWait returns it: EINTR is
// no event.
func (n *Notifier) epollResult(k int, err error) (int, error) {
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("epoll_wait: %w", err)
	}
	return k, nil
}

// drainInotify reads the pending inotify events and returns the directories
// they concern (each once); an overflow names every directory.
func (n *Notifier) drainInotify() []string {
	seen := map[string]bool{}
	var buf [4096]byte
	for {
		k, err := rawRead(n.ino, buf[:])
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

// Close stops every watch. Its inotify instance, whose close waits for an
// SRCU grace period, is not closed on the caller's thread: its watches are
// removed at once (inotify_rm_watch hands the marks to the kernel's reaper)
// and the instance is closed on a goroutine of its own (closeInotify), so
// that the grace period runs beside what the caller does next (a thaw),
// not after it in the process's exit.
func (n *Notifier) Close() {
	for p := range n.files {
		n.Remove(p)
	}
	for p := range n.dirs {
		n.Remove(p)
	}
	n.wakeMu.Lock()
	if n.wake >= 0 {
		_ = unix.Close(n.wake)
		n.wake = -1
	}
	n.wakeMu.Unlock()
	if n.ino >= 0 {
		closeInotify(n.ino)
		n.ino = -1
	}
	if n.tick >= 0 {
		_ = unix.Close(n.tick)
		n.tick = -1
	}
	switch {
	case n.epf != nil:
		_ = n.epf.Close()
	case n.ep >= 0:
		_ = unix.Close(n.ep)
	}
	n.ep, n.epf, n.rc = -1, nil, nil
	n.dirs, n.dirOfWD = map[string]int{}, map[int]string{}
}
