package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a network namespace the test made, with only lo (up) in it: the
// "pod network" of the connection tests. Nothing of this machine's is in it,
// so whatever cgfreeze does there cannot touch a socket the tests did not
// make. It lives as long as its file is open; processes join it with
// nsenter --net=<path>, and the test's own sockets are made in it on a
// thread that entered it (do).
type netns struct {
	f    *os.File
	path string
}

// newNetns makes a network namespace that lives until closed.
func newNetns() (*netns, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	_ = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("unshare a network namespace: %w", err)}
			return nil
		}
		if err := loUp(); err != nil {
			ch <- result{err: fmt.Errorf("bring lo up in the test's network namespace: %w", err)}
			return nil
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		ch <- result{f, err}
		return nil
	})
	r := <-ch
	if r.err != nil {
		return nil, r.err
	}
	return &netns{f: r.f, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), r.f.Fd())}, nil
}

func (h *harness) newNetns() *netns {
	h.t.Helper()
	n, err := newNetns()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = n.f.Close() })
	return n
}

func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// do runs fn on a thread inside the namespace; sockets fn creates belong to
// it for good, and can be used from any goroutine afterwards.
func (n *netns) do(fn func() error) error {
	return onThread(func() error {
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter the test's network namespace: %w", err)
		}
		return fn()
	})
}

// onThread runs fn on a locked thread, which fn may move to another network
// namespace; the thread is put back into this process's network namespace
// and handed back afterwards. Unlike cgfreeze, the tests must not let such
// a thread die: a child started with Pdeathsig (every workload) gets the
// signal when the thread that forked it exits, and the thread that fn runs
// on may be one that forked a workload before.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = home.Close() }()
		err = fn()
		if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Left locked: the runtime ends the thread.
			errc <- errors.Join(err, fmt.Errorf("return to this process's network namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

func (n *netns) listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

func (n *netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// --- helper processes: this test binary, run as a small server or client ---

// helperEnv names the helper that a run of this test binary is.
const helperEnv = "CGFREEZE_ITEST_HELPER"

// helper is a helper process; its stdout is one JSON message a line.
type helper struct {
	w    *workload
	msgs chan helperMsg
}

// helperMsg is one line a helper prints.
type helperMsg struct {
	Kind   string `json:"kind"` // listening, accepted, dialed, closed, delivered, ...
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	Err    string `json:"err,omitempty"`
	N      int    `json:"n,omitempty"`
	at     time.Time
}

type helperOpts struct {
	netns *netns
	// pidnsOf, when not 0, runs the helper in the PID (and network)
	// namespace of that host PID: a process of a kindSubtree target's
	// container.
	pidnsOf int
	env     []string
}

// startHelper runs this test binary as helper name (helpers_test.go) in
// cgroup cg, in the namespaces o says.
func (h *harness) startHelper(cg *cgroup, name string, o helperOpts, args ...string) *helper {
	h.t.Helper()
	self, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	n := len(h.workloads)
	w := &workload{name: fmt.Sprintf("helper%d-%s", n, name), cg: cg, exited: make(chan struct{})}
	w.dir = filepath.Join(h.dir, w.name)
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	// The process joins cg itself, once inside the namespaces: nsenter
	// --pid forks, and its parent must stay out of the target.
	enter := []string{busybox, "sh", "-c", `echo 0 > "$1" || { echo "cannot join the cgroup" >&2; exit 97; }; shift; exec "$@"`, "enter", cg.file("cgroup.procs"), self}
	argv := slices.Concat(enter, args)
	switch {
	case o.pidnsOf != 0:
		argv = append([]string{nsenterPath, "--target", strconv.Itoa(o.pidnsOf), "--pid", "--net", "--"}, argv...)
	case o.netns != nil:
		argv = append([]string{nsenterPath, "--net=" + o.netns.path, "--"}, argv...)
	}
	w.stderr = filepath.Join(w.dir, "stderr")
	errf, err := os.Create(w.stderr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = errf.Close() }()
	out, err := os.Create(filepath.Join(w.dir, "stdout"))
	if err != nil {
		h.t.Fatal(err)
	}
	_ = out.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		h.t.Fatal(err)
	}
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Env = append(append(os.Environ(), helperEnv+"="+name), o.env...)
	w.cmd.Stdout = pw
	w.cmd.Stderr = errf
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = w.cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = pr.Close()
		h.t.Fatalf("start helper %s: %v", name, err)
	}
	h.workloads = append(h.workloads, w)
	hp := &helper{w: w, msgs: make(chan helperMsg, 64)}
	go func() {
		defer close(hp.msgs)
		defer func() { _ = pr.Close() }()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var m helperMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = helperMsg{Kind: "garbage", Err: sc.Text()}
			}
			m.at = time.Now()
			hp.msgs <- m
		}
	}()
	go func() {
		_ = w.cmd.Wait()
		close(w.exited)
	}()
	w.pid = w.cmd.Process.Pid
	return hp
}

// next returns the helper's next message, which must be of kind.
func (hp *helper) next(t testing.TB, kind string, d time.Duration) helperMsg {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case m, ok := <-hp.msgs:
		if !ok {
			<-hp.w.exited
			t.Fatalf("%s ended (%v) before a %q message; stderr: %s", hp.w.name, hp.w.cmd.ProcessState, kind, hp.w.stderrText())
		}
		if m.Kind != kind {
			t.Fatalf("%s said %+v where a %q message was due; stderr: %s", hp.w.name, m, kind, hp.w.stderrText())
		}
		return m
	case <-timer.C:
		t.Fatalf("%s: no %q message after %v; stderr: %s", hp.w.name, kind, d, hp.w.stderrText())
	}
	return helperMsg{}
}
