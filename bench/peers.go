package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The floors: the least a freeze can cost from a process's exec, built at
// bench time from these sources (kept beside the bench, embedded so that
// the bench needs no source tree to build them).
var (
	//go:embed floor/floor.c
	floorC string
	//go:embed floorgo/main.go
	floorGo string
)

// floor names the four floor methods: C or Go, with or without a watchdog
// child forked before the write.
var floors = []struct{ name, lang string }{
	{"c-floor", "c"}, {"c-floor-wd", "c"}, {"go-floor", "go"}, {"go-floor-wd", "go"},
}

// buildFloors writes the embedded sources into the run's directory and
// builds them: the C one with the system's gcc, static, -O2; the Go one with
// the go tool that builds cgfreeze, CGO_ENABLED=0, as a file outside any
// module (it imports the standard library only).
func (b *bench) buildFloors(ctx context.Context) error {
	dir := filepath.Join(b.dir, "floor-src")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cSrc, goSrc := filepath.Join(dir, "floor.c"), filepath.Join(dir, "main.go")
	if err := os.WriteFile(cSrc, []byte(floorC), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(goSrc, []byte(floorGo), 0o644); err != nil {
		return err
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return errors.New("gcc is missing (the C floor is built at bench time): apt-get install gcc libc6-dev")
	}
	b.floorC = filepath.Join(b.dir, "floor-c")
	cmd := exec.CommandContext(ctx, gcc, "-O2", "-static", "-Wall", "-o", b.floorC, cSrc)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gcc %s: %w\n%s", cSrc, err, out)
	}
	b.floorGo = filepath.Join(b.dir, "floor-go")
	cmd = exec.CommandContext(ctx, b.goTool, "build", "-o", b.floorGo, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=on", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", goSrc, err, out)
	}
	if out, err := exec.Command(gcc, "--version").Output(); err == nil {
		b.res.machine.gcc = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return nil
}

// floor runs one freeze and thaw of ct by a floor program, timed as
// cgfreeze is: freeze from its exec to the "frozen" line on its stdout,
// thaw from SIGTERM to its exit (after the confirmed thaw and, with a
// watchdog, the watchdog's exit).
func (b *bench) floor(ctx context.Context, ct *container, name string) (s sample, err error) {
	if err := ct.check(); err != nil {
		return s, err
	}
	bin := b.floorC
	if strings.HasPrefix(name, "go-") {
		bin = b.floorGo
	}
	ver, mnt := "v1", b.h.freezer
	if ct.version == 2 {
		ver, mnt = "v2", b.cg2Root
	}
	args := []string{ver, mnt, strconv.Itoa(ct.pid)}
	if strings.HasSuffix(name, "-wd") {
		args = append(args, "watchdog")
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return s, err
	}
	defer outR.Close()
	defer outW.Close()
	var stderr strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = outW, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	lines := make(chan line, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
	}()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return s, err
	}
	_ = outW.Close()
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		_ = cmd.Wait()
		return s, err
	}
	defer unix.Close(pidfd)
	waited := false
	defer func() {
		if err != nil {
			// The container's cleanup thaws what it leaves.
			_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
			if !waited {
				_ = cmd.Wait()
			}
			err = fmt.Errorf("%s (%s): %w; its stderr: %q", name, ct, err, tail(stderr.String(), 1500))
		}
	}()
	wait := func(want string) (time.Time, error) {
		timer := time.NewTimer(eventDeadline)
		defer timer.Stop()
		select {
		case l, ok := <-lines:
			if !ok || l.text != want {
				return time.Time{}, fmt.Errorf("no %q line (got %q)", want, l.text)
			}
			return l.at, nil
		case <-timer.C:
			return time.Time{}, fmt.Errorf("no %q line within %v", want, eventDeadline)
		case <-ctx.Done():
			return time.Time{}, context.Cause(ctx)
		}
	}
	at, err := wait("frozen")
	if err != nil {
		return s, err
	}
	s.freeze = at.Sub(t0)
	if err := ct.requireFrozen(name); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	t2 := time.Now()
	if err := unix.Kill(cmd.Process.Pid, unix.SIGTERM); err != nil {
		return s, err
	}
	if err := waitPidfd(pidfd, exitDeadline); err != nil {
		return s, err
	}
	s.thaw = time.Since(t2)
	waited = true
	if err := cmd.Wait(); err != nil {
		return s, fmt.Errorf("exit: %w", err)
	}
	if _, err := wait("thawed"); err != nil {
		return s, err
	}
	return s, ct.requireThawed(name)
}

// crunPauseResume is the other peer, on a crun container of the same
// layout (crun can only pause its own containers): `crun pause`, then
// `crun resume`, each timed as a whole process. crun 1.8 on cgroup2 exits
// before cgroup.events says frozen 1 (it does not wait for the kernel):
// confirm is the time from its exit until it does, 0 when the first read
// after its exit says so already; the same for the thaw.
func (b *bench) crunPauseResume(ctx context.Context, kc *container) (s sample, err error) {
	if err := kc.check(); err != nil {
		return s, err
	}
	if s.freeze, err = b.crun(ctx, kc.version, "pause", kc.name); err != nil {
		return s, err
	}
	if s.confirm, s.unconfirmed, err = kc.confirm(true); err != nil {
		return s, fmt.Errorf("crun pause: %w", err)
	}
	if err := kc.requireFrozen("crun pause"); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	if s.thaw, err = b.crun(ctx, kc.version, "resume", kc.name); err != nil {
		return s, err
	}
	if s.thawConfirm, _, err = kc.confirm(false); err != nil {
		return s, fmt.Errorf("crun resume: %w", err)
	}
	return s, kc.requireThawed("crun resume")
}

// confirm waits until the kernel says the container is frozen (want) or
// thawed: how long that took, and whether the first read did not say so.
// On v1 a freeze's first read counts too: `crun pause` writes FROZEN to
// freezer.state and exits without reading it, and it is that read which
// makes the kernel say FROZEN (it checks every task of the cgroup, 1 to
// 2 ms for 5000 here), the read that cgfreeze, runc, the floors and the
// kernel's own figure all pay. On v2 the kernel keeps cgroup.events up to
// date itself: a first read that says so counts 0.
func (ct *container) confirm(want bool) (time.Duration, bool, error) {
	t0 := time.Now()
	is := func() (bool, error) {
		if ct.version == 2 {
			f, err := eventsFrozen(ct.dir)
			return f == want, err
		}
		st, err := readFile(filepath.Join(ct.dir, "freezer.state"))
		return (st == "FROZEN") == want && st != "FREEZING", err
	}
	ok, err := is()
	if err != nil || ok {
		if ct.version == 1 && want {
			return time.Since(t0), false, err
		}
		return 0, false, err
	}
	if ct.version == 2 {
		ev, err := openEvents(ct.dir)
		if err != nil {
			return 0, true, err
		}
		defer ev.f.Close()
		err = ev.wait(want)
		return time.Since(t0), true, err
	}
	for {
		ok, err := is()
		if err != nil || ok {
			return time.Since(t0), true, err
		}
		if time.Since(t0) > limitDeadline {
			return 0, true, fmt.Errorf("%s: not frozen=%v after %v", ct, want, limitDeadline)
		}
	}
}

// crun runs crun with the run's state directory (crun --root) and returns
// its wall time: for v1 through the spawner (crun 1.8 refuses a hybrid
// host), for v2 from this process, where cgroup2 is at /sys/fs/cgroup.
func (b *bench) crun(ctx context.Context, version int, args ...string) (time.Duration, error) {
	argv := append([]string{b.tools["crun"], "--root", b.crunRoot}, args...)
	if version == 1 {
		return b.spawner.run(argv)
	}
	return timedRun(ctx, b.dir, argv)
}

// timedRun runs a command to its end and returns its wall time; its
// output, on failure, is in the error.
func timedRun(ctx context.Context, dir string, argv []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A file, not a pipe: `runc run --detach` (and crun's) hands its stdio
	// to the container, which would hold a pipe open for its whole life.
	out, err := os.CreateTemp(dir, "output-*")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.Remove(out.Name()) }()
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	if err != nil {
		msg, _ := os.ReadFile(out.Name())
		return d, fmt.Errorf("%s %s: %w: %s", filepath.Base(argv[0]), strings.Join(argv[1:], " "), err, strings.TrimSpace(string(msg)))
	}
	return d, nil
}

// spawnerEnv starts the bench as the spawner: its argument is the run's
// directory.
const spawnerEnv = "CGFREEZE_BENCH_SPAWNER"

// spawner is a child of the inner process in a mount namespace of its own
// without the cgroup2 mount (/sys/fs/cgroup/unified on this hybrid host),
// where crun 1.8 sees a v1 host: it runs the commands it is given, one at a
// time, and times each as timedRun does (Go cannot move one of its threads
// into another mount namespace, and a wrapper such as nsenter would add its
// own exec to every timed command).
type spawner struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.Closer
	in    *json.Encoder
	out   *bufio.Scanner
}

type spawnRequest struct {
	Argv []string `json:"argv"`
}

type spawnReply struct {
	NS    int64  `json:"ns"`
	Error string `json:"error"`
}

func (b *bench) startSpawner() (*spawner, error) {
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), spawnerEnv+"="+b.dir)
	cmd.Stderr = os.Stderr
	// Its own process group: a terminal's Ctrl-C must not end it before
	// the inner process's cleanup has deleted the crun containers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sp := &spawner{cmd: cmd, stdin: w, in: json.NewEncoder(w), out: bufio.NewScanner(r)}
	if !sp.out.Scan() || sp.out.Text() != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("the crun spawner did not start (%q)", sp.out.Text())
	}
	return sp, nil
}

// run runs argv in the spawner's mount namespace.
// It is not bounded by a context: a Ctrl-C must not cut the cleanup's
// `crun delete` short; crun's commands end by themselves.
func (sp *spawner) run(argv []string) (time.Duration, error) {
	if sp == nil {
		return 0, errors.New("no spawner (no v1 hierarchy)")
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err := sp.in.Encode(spawnRequest{argv}); err != nil {
		return 0, fmt.Errorf("the crun spawner: %w", err)
	}
	if !sp.out.Scan() {
		return 0, fmt.Errorf("the crun spawner ended: %w", sp.out.Err())
	}
	var rep spawnReply
	if err := json.Unmarshal(sp.out.Bytes(), &rep); err != nil {
		return 0, fmt.Errorf("the crun spawner: %q: %w", sp.out.Text(), err)
	}
	if rep.Error != "" {
		return time.Duration(rep.NS), errors.New(rep.Error)
	}
	return time.Duration(rep.NS), nil
}

// spawnerDeadline bounds the spawner's exit after EOF on its stdin.
const spawnerDeadline = 10 * time.Second

// stop ends the spawner: EOF on its stdin, then SIGKILL if it lingers.
func (sp *spawner) stop() error {
	if sp == nil {
		return nil
	}
	_ = sp.stdin.Close()
	t := time.AfterFunc(spawnerDeadline, func() { _ = sp.cmd.Process.Kill() })
	defer t.Stop()
	if err := sp.cmd.Wait(); err != nil {
		return fmt.Errorf("the crun spawner: %w", err)
	}
	return nil
}

// spawnerMain is the spawner's side: unmount every cgroup2 mount, say
// ready, run what comes on stdin.
func spawnerMain(dir string) int {
	h, err := discoverHost()
	if err != nil {
		logf("spawner: %v", err)
		return 1
	}
	if h.freezer != "" && h.cg2 != "/sys/fs/cgroup" {
		if err := unix.Unmount(h.cg2, unix.MNT_DETACH); err != nil {
			logf("spawner: unmount %s (in its own mount namespace): %v", h.cg2, err)
			return 1
		}
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		var req spawnRequest
		var rep spawnReply
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil || len(req.Argv) == 0 {
			rep.Error = fmt.Sprintf("bad request %q", sc.Text())
		} else {
			d, err := timedRun(context.Background(), dir, req.Argv)
			rep.NS = int64(d)
			if err != nil {
				rep.Error = err.Error()
			}
		}
		if err := enc.Encode(rep); err != nil {
			return 1
		}
	}
	return 0
}
