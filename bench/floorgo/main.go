// Command floorgo is the Go floor of the bench, the Go twin of
// bench/floor/floor.c: read /proc/PID/cgroup once, open the freezer file,
// write it, confirm that the kernel says frozen; then wait for SIGTERM and
// thaw the same way. It imports the standard library only (no
// golang.org/x/sys: its package init is not needed), so that the bench can
// build it from its embedded source alone.
//
// With "watchdog" it starts a watchdog child before the write that thaws
// the cgroup if this process dies before its thaw. Go cannot fork(2)
// without an exec (the child of a multi-threaded runtime may only make raw
// system calls), so the cheapest honest Go way is what cgfreeze's own
// holder does: a re-exec of this binary (syscall.ForkExec: clone(CLONE_VFORK)
// and execve, a second Go runtime start, in parallel with the freeze; not
// os.StartProcess, whose first call also forks and reaps a child to check
// that pidfds work, 0.3 ms more). The
// guard stands from the fork on without waiting for the child: it holds
// the read end of a pipe whose write end only this process holds, and reads
// EOF whenever it gets there if this process died.
//
//	floorgo v1|v2 MOUNTPOINT PID [watchdog]
//
// stdout: "frozen" once frozen, "thawed" once thawed. Exit 0; 2 bad usage;
// 3 a cgroup file failed or the state did not come within 20 s.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const deadline = 20 * time.Second

type cg struct {
	v2     bool
	state  int // v1 freezer.state (rw), v2 cgroup.freeze
	events int // v2 cgroup.events
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "floorgo: "+format+"\n", args...)
	os.Exit(3)
}

func (c *cg) set(frozen bool) error {
	v := "THAWED"
	switch {
	case c.v2 && frozen:
		v = "1"
	case c.v2:
		v = "0"
	case frozen:
		v = "FROZEN"
	}
	_, err := syscall.Pwrite(c.state, []byte(v), 0)
	return err
}

func (c *cg) is(want bool) bool {
	var buf [256]byte
	fd := c.state
	if c.v2 {
		fd = c.events
	}
	n, err := syscall.Pread(fd, buf[:], 0)
	if err != nil {
		die("read the state: %v", err)
	}
	b := buf[:n]
	if !c.v2 {
		if want {
			return bytes.HasPrefix(b, []byte("FROZEN"))
		}
		return bytes.HasPrefix(b, []byte("THAWED"))
	}
	i := bytes.Index(b, []byte("frozen "))
	return i >= 0 && i+7 < len(b) && (b[i+7] == '1') == want
}

// pollfd is struct pollfd; the syscall package has no poll(2).
type pollfd struct {
	fd             int32
	events, revent int16
}

// spin is how long wait re-reads before it polls: the kernel sends at most
// 100 notifications a second per cgroup file and defers later ones by a
// timer, which delayed a poll's wake-up by 1 to 15 ms here where a re-read
// said frozen within 0.1 ms.
const spin = 2 * time.Millisecond

// wait re-reads the state until it is want: at once and for the first
// spin, then (v2) by ppoll(2) on cgroup.events with a 1 ms timeout. v1 has
// no notification: re-read.
func (c *cg) wait(want bool) {
	t0 := time.Now()
	for !c.is(want) {
		d := time.Since(t0)
		if d > deadline {
			die("the cgroup is not frozen=%v after %v", want, deadline)
		}
		if c.v2 && d > spin {
			p := pollfd{fd: int32(c.events), events: 0x2} // POLLPRI
			ts := syscall.NsecToTimespec(int64(time.Millisecond))
			_, _, _ = syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&p)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		}
	}
}

func open(path string, mode int) int {
	fd, err := syscall.Open(path, mode|syscall.O_CLOEXEC, 0)
	if err != nil {
		die("open %s: %v", path, err)
	}
	return fd
}

func main() {
	a := os.Args[1:]
	if len(a) == 3 && a[0] == "__watchdog" {
		watchdog(a[1] == "v2", a[2])
	}
	if len(a) < 3 || len(a) > 4 || (a[0] != "v1" && a[0] != "v2") || (len(a) == 4 && a[3] != "watchdog") {
		fmt.Fprintln(os.Stderr, "usage: floorgo v1|v2 MOUNTPOINT PID [watchdog]")
		os.Exit(2)
	}
	c := &cg{v2: a[0] == "v2"}
	b, err := os.ReadFile("/proc/" + a[2] + "/cgroup")
	if err != nil {
		die("%v", err)
	}
	path := ""
	for _, l := range strings.Split(string(b), "\n") {
		id, rest, _ := strings.Cut(l, ":")
		ctl, p, ok := strings.Cut(rest, ":")
		if ok && ((c.v2 && id == "0" && ctl == "") || (!c.v2 && strings.Contains(ctl, "freezer"))) {
			path = p
			break
		}
	}
	if path == "" {
		die("/proc/%s/cgroup has no line of cgroup %s", a[2], a[0])
	}
	dir := a[1] + path
	file := dir + "/freezer.state"
	if c.v2 {
		file = dir + "/cgroup.freeze"
		c.state = open(file, syscall.O_WRONLY)
		c.events = open(dir+"/cgroup.events", syscall.O_RDONLY)
	} else {
		c.state = open(file, syscall.O_RDWR)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	var guard *os.File
	child := 0
	if len(a) == 4 {
		r, w, err := os.Pipe()
		if err != nil {
			die("pipe: %v", err)
		}
		closed := ^uintptr(0) // -1: the child's descriptor is closed
		child, err = syscall.ForkExec("/proc/self/exe", []string{os.Args[0], "__watchdog", a[0], file},
			&syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{closed, closed, os.Stderr.Fd(), r.Fd()}})
		if err != nil {
			die("start the watchdog: %v", err)
		}
		_ = r.Close()
		guard = w
	}

	if err := c.set(true); err != nil {
		die("write %s: %v", file, err)
	}
	c.wait(true)
	if _, err := os.Stdout.WriteString("frozen\n"); err != nil {
		die("stdout: %v", err)
	}
	<-sig
	if err := c.set(false); err != nil {
		die("write %s: %v", file, err)
	}
	c.wait(false)
	if guard != nil {
		if _, err := guard.Write([]byte("d")); err != nil {
			die("guard: %v", err)
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(child, &ws, 0, nil)
	}
	if _, err := os.Stdout.WriteString("thawed\n"); err != nil {
		die("stdout: %v", err)
	}
}

// watchdog waits on fd 3: "d" means the parent thawed; EOF means it died
// before: thaw.
func watchdog(v2 bool, file string) {
	var b [1]byte
	n, _ := os.NewFile(3, "guard").Read(b[:])
	if n == 1 && b[0] == 'd' {
		os.Exit(0)
	}
	c := &cg{v2: v2, state: open(file, syscall.O_WRONLY)}
	_ = c.set(false)
	os.Exit(1)
}
