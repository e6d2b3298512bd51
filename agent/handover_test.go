//go:build linux

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	"golang.org/x/sys/unix"
)

// lockedDir opens a directory and takes an exclusive flock on it, as
// freezer's holder lock does on the target's cgroup directory.
func lockedDir(t *testing.T) (*os.File, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return f, dir
}

// lockFree tells whether a new open file of dir can take the lock.
func lockFree(t *testing.T, dir string) bool {
	t.Helper()
	g, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	err = unix.Flock(int(g.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if err == nil {
		_ = unix.Flock(int(g.Fd()), unix.LOCK_UN)
		return true
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatal(err)
	}
	return false
}

// TestHandoverPassesLock: the hand-over carries the lock's descriptor
// (SCM_RIGHTS) beside the "hold" message, after the intent; the lock
// stays taken when the sender closes its copy, and is released when the
// receiver closes the one it took.
func TestHandoverPassesLock(t *testing.T) {
	sup, hold := pair(t)
	link := NewLink(hold, testLogger(t))
	lock, dir := lockedDir(t)
	in := Intent{freezer.Handle{PID: 42, Path: "/my pod/ctr", Version: 2, Strategy: freezer.StrategyDirect}}
	mnt, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.SendFile(Message{Kind: MsgFreeze, Arg: encodeJSON(in)}, mnt); err != nil {
		t.Fatal(err)
	}
	_ = mnt.Close()
	at := time.Unix(1700000000, 123)
	if err := sup.SendFile(Message{Kind: MsgHold, Arg: encodeJSON(Handover{Processes: 1000, FrozenAt: at.UnixNano()})}, lock); err != nil {
		t.Fatal(err)
	}
	_ = lock.Close()
	if lockFree(t, dir) {
		t.Fatal("the lock was released when the sender closed its copy, with the descriptor in flight")
	}
	w, err := link.AwaitWord()
	if err != nil || w.Kind != MsgFreeze || w.Intent.PID != 42 || w.Intent.Path != in.Path || w.Intent.Strategy != freezer.StrategyDirect {
		t.Fatalf("AwaitWord() = %+v, %v; want the intent %+v", w, err, in)
	}
	// The intent's file (the supervisor's mount) comes with it, the
	// lock with the hand-over: each message takes its own.
	if len(w.Files) != 1 {
		t.Fatalf("AwaitWord() gave %d files with the intent, want 1", len(w.Files))
	}
	_ = w.Files[0].Close()
	h, got, err := link.AwaitHandover()
	if err != nil {
		t.Fatalf("AwaitHandover(): %v", err)
	}
	if h.Processes != 1000 || h.FrozenAt != at.UnixNano() {
		t.Errorf("AwaitHandover() = %+v, want 1000 processes at %d", h, at.UnixNano())
	}
	var a, b unix.Stat_t
	if err := unix.Fstat(int(got.Fd()), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(dir, &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("the descriptor received is not the directory sent")
	}
	if flags, err := unix.FcntlInt(got.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("the descriptor received is not close-on-exec (flags %#x, %v)", flags, err)
	}
	if lockFree(t, dir) {
		t.Error("the lock is free while the receiver holds the descriptor")
	}
	_ = got.Close()
	if !lockFree(t, dir) {
		t.Error("the lock is still taken after the receiver closed the descriptor")
	}
	// After the hand-over the link watches the supervisor.
	_ = sup.Close()
	select {
	case <-link.Gone():
	case <-time.After(5 * time.Second):
		t.Fatal("the link did not see the supervisor's end close after the hand-over")
	}
}

// TestHandoverEnds: what ends the wait for the hand-over: the supervisor's
// abort (it rolled back), its death (EOF: the holder recovers), a "hold"
// without a descriptor.
func TestHandoverEnds(t *testing.T) {
	for _, tt := range []struct {
		name string
		send func(sup *Channel)
		want error
	}{
		{"abort", func(sup *Channel) { _ = sup.Send(Message{Kind: MsgAbort}) }, ErrAborted},
		{"supervisor gone", func(sup *Channel) { _ = sup.Close() }, ErrSupervisorGone},
		{"cut hand-over", func(sup *Channel) { _, _ = sup.f.WriteString("hold {\"proc"); _ = sup.Close() }, ErrSupervisorGone},
		{"no lock", func(sup *Channel) { _ = sup.Send(Message{Kind: MsgHold, Arg: `{"processes":1}`}) }, ErrNoLock},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sup, hold := pair(t)
			link := NewLink(hold, testLogger(t))
			if err := sup.Send(Message{Kind: MsgFreeze, Arg: `{"pid":1,"path":"/x"}`}); err != nil {
				t.Fatal(err)
			}
			if _, err := link.AwaitWord(); err != nil {
				t.Fatal(err)
			}
			tt.send(sup)
			if _, f, err := link.AwaitHandover(); !errors.Is(err, tt.want) || f != nil {
				t.Errorf("AwaitHandover() = %v, %v; want %v and no descriptor", f, err, tt.want)
			}
		})
	}
}

// TestAwaitWordSkipsMalformed: a word whose intent cannot be read is
// skipped; the next one counts.
func TestAwaitWordSkipsMalformed(t *testing.T) {
	sup, hold := pair(t)
	link := NewLink(hold, testLogger(t))
	for _, m := range []Message{{Kind: MsgFreeze, Arg: "/not-json"}, {Kind: MsgFreeze, Arg: `{"pid":3}`}, {Kind: MsgFreeze, Arg: `{"pid":3,"path":"/"}`}} {
		if err := sup.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if w, err := link.AwaitWord(); err != nil || w.Intent.PID != 3 || w.Intent.Path != "/" {
		t.Errorf("AwaitWord() = %+v, %v; want the third word", w, err)
	}
}

// TestPeerClosed: the supervisor sees at once, without waiting, whether
// its holder's end is closed.
func TestPeerClosed(t *testing.T) {
	sup, hold := pair(t)
	if peerClosed(sup.f) {
		t.Fatal("peerClosed with both ends open")
	}
	_ = hold.Close()
	if !peerClosed(sup.f) {
		t.Error("peerClosed is false after the far end closed")
	}
	if err := sup.SendFile(Message{Kind: MsgHold, Arg: "{}"}, sup.f); err == nil {
		t.Error("SendFile to a closed far end succeeded")
	}
}

// TestTakeFileClosedWithChannel: descriptors received and never taken are
// closed with the channel.
func TestTakeFileClosedWithChannel(t *testing.T) {
	sup, hold := pair(t)
	f, err := os.Open(filepath.Dir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := sup.SendFile(Message{Kind: MsgEnd, Arg: "x"}, f); err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Receive(); err != nil {
		t.Fatal(err)
	}
	hold.fmu.Lock()
	n := len(hold.files)
	var fd int
	if n > 0 {
		fd = int(hold.files[0].Fd())
	}
	hold.fmu.Unlock()
	if n != 1 {
		t.Fatalf("%d descriptors received, want 1", n)
	}
	_ = hold.Close()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Errorf("the descriptor %d received is still open after the channel closed (%v)", fd, err)
	}
}
