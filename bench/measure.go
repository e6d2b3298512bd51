package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sample is one measured freeze and thaw.
type sample struct {
	freeze, thaw time.Duration
	// freezeEv, thawEv are cgfreeze's own elapsed_ms (its events).
	freezeEv, thawEv float64
	// loop is, for the subtree limit, the bare migration loop alone.
	loop time.Duration
	// confirm is, for crun, the time from its exit until the kernel said
	// frozen (0: at once); unconfirmed says it had not yet; thawConfirm is
	// the same for the thaw.
	confirm, thawConfirm time.Duration
	unconfirmed          bool
	// run is the whole run (-runs) the sample is from.
	run int
	// hwm is the larger peak RSS (VmHWM, KiB) of cgfreeze's two processes,
	// read while it holds. (wait4's ru_maxrss would not do: the kernel
	// folds the parent's high-water mark into a child's at exec, and Go
	// starts children sharing the parent's memory until then.)
	hwm int64
}

// Deadlines of the bench's own waits.
const (
	eventDeadline = 30 * time.Second
	exitDeadline  = 30 * time.Second
	limitDeadline = 20 * time.Second
	// quietBeforeThaw is how long every freeze of every method stays
	// frozen before its thaw is timed: a real thaw comes after a hold,
	// and one timed right after the freeze measures what the freeze left
	// running instead. subtree: moving a process between cgroups takes
	// cgroup_threadgroup_rwsem for writing; the first writer after a quiet
	// while waits for an RCU grace period (rcu_sync_enter: 10 ms and more
	// on this VM), later ones within a grace period do not, so a thaw
	// right after the freeze's own migration would skip the wait that
	// every real thaw pays. cgfreeze: right after its holding event its
	// holder is still taking the hold over (the hand-over, its watches)
	// and the supervisor is starting the threads of its waits, which a
	// SIGTERM then waits for (v1, 1 process: 3.4 to 3.8 ms to exit, 2.3
	// after 100 ms). The floors, crun, runc and the kernel's own figures
	// wait the same.
	quietBeforeThaw = 100 * time.Millisecond
)

type line struct {
	text string
	at   time.Time
}

type event struct {
	Event     string  `json:"event"`
	Strategy  string  `json:"strategy"`
	Processes int     `json:"processes"`
	ElapsedMS float64 `json:"elapsed_ms"`
	Reason    string  `json:"reason"`
	Error     string  `json:"error"`
}

// agentScript runs cgfreeze the way kubelet starts an ephemeral container
// with `kubectl debug --target`: in a cgroup of its own ($1: the agent
// cgroup's cgroup.procs), in the PID namespace of the target ($2, a host
// PID), in a cgroup namespace of its own (rooted at the agent cgroup) and a
// mount namespace of its own with its own /proc and cgroup2 at
// /sys/fs/cgroup (in place of the bench's bind of the host's cgroup2 there:
// the kernel refuses a cgroup2 mount right on top of another). Once all of that stands it says "r" on fd 4 and waits for
// a byte on fd 3 before it executes cgfreeze: the bench measures cgfreeze
// from its exec, not the emulation's setup. nsenter forks (a PID namespace
// applies to children): cgfreeze is nsenter's only child.
const agentScript = `
echo 0 > "$1" || exit 97
tpid=$2; nsenter=$3; unshare=$4; mnt=$5; umnt=$6; shift 6
exec "$nsenter" --target "$tpid" --pid -- "$unshare" --cgroup --mount --propagation private /bin/busybox sh -c '
	mnt=$1; umnt=$2; shift 2
	"$mnt" -t proc proc /proc || exit 98
	"$umnt" -l /sys/fs/cgroup || exit 98
	"$mnt" -t cgroup2 none /sys/fs/cgroup || exit 98
	echo r >&4
	exec 4>&-
	read -r go <&3 || exit 99
	exec "$@" 3<&-' agent "$mnt" "$umnt" "$@"
`

// cgfreeze runs one freeze, hold and thaw of ct by the cgfreeze binary:
// freeze is from its exec to the frozen event on its stdout; thaw is from
// SIGTERM to its exit, which comes after the confirmed thaw and after its
// holder child has ended. subtree runs it as a kubectl-debug agent. during,
// if set, runs while it holds, with cgfreeze's host PID.
func (b *bench) cgfreeze(ctx context.Context, ct *container, subtree bool, during func(holder int) error, extra ...string) (s sample, err error) {
	how := "direct"
	if ct.version == 1 {
		how = "v1"
	}
	if subtree {
		how = "subtree"
	}
	if err := ct.check(); err != nil {
		return s, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return s, err
	}
	defer outR.Close()
	defer outW.Close()
	errFile, err := os.CreateTemp(b.dir, "cgfreeze-stderr-*")
	if err != nil {
		return s, err
	}
	defer func() { _ = os.Remove(errFile.Name()) }()
	defer errFile.Close()
	lines := make(chan line, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Now()}
		}
	}()
	describe := func(err error) error {
		msg, _ := os.ReadFile(errFile.Name())
		return fmt.Errorf("cgfreeze (%s, %s): %w; its stderr: %q", how, ct, err, tail(string(msg), 1500))
	}

	var cmd *exec.Cmd
	var pid int
	var t0 time.Time
	if !subtree {
		cmd = exec.Command(b.bin, "--pid", strconv.Itoa(ct.pid), "-o", "json")
		cmd.Stdout, cmd.Stderr = outW, errFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		t0 = time.Now()
		if err := cmd.Start(); err != nil {
			return s, err
		}
		pid = cmd.Process.Pid
	} else {
		cmd, pid, t0, err = b.startAgent(ctx, ct, outW, errFile, extra...)
		if err != nil {
			return s, describe(err)
		}
	}
	_ = outW.Close()
	exited := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(exited)
	}()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-exited
		return s, err
	}
	defer unix.Close(pidfd)
	defer func() {
		if err != nil {
			// Both cgfreeze processes (and the agent's wrapper) are in
			// the process group the bench made; the container's cleanup
			// thaws what they leave.
			_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
			select {
			case <-exited:
				if werr != nil {
					err = fmt.Errorf("%w (it ended: %v)", err, werr) //nolint:errorlint // one error is wrapped
				}
			case <-time.After(exitDeadline):
			}
			err = describe(err)
		}
	}()

	frozen, err := waitEvent(ctx, lines, "frozen")
	if err != nil {
		return s, err
	}
	s.freeze, s.freezeEv = frozen.at.Sub(t0), frozen.ev.ElapsedMS
	// Event contract schema 2: the count comes in holding, after frozen
	// (the time measured is frozen's).
	holding, err := waitEvent(ctx, lines, "holding")
	if err != nil {
		return s, err
	}
	if holding.ev.Processes != ct.n {
		return s, fmt.Errorf("the holding event counts %d processes, want %d", holding.ev.Processes, ct.n)
	}
	if err := ct.requireFrozen(how); err != nil {
		return s, err
	}
	for _, p := range append([]int{pid}, children(pid)...) {
		if kb, err := statusKB(p, "VmHWM"); err == nil {
			s.hwm = max(s.hwm, kb)
		}
	}
	if during != nil {
		if err := during(pid); err != nil {
			return s, err
		}
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	t2 := time.Now()
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return s, err
	}
	if err := waitPidfd(pidfd, exitDeadline); err != nil {
		return s, err
	}
	s.thaw = time.Since(t2)
	select {
	case <-exited:
	case <-time.After(exitDeadline):
		return s, errors.New("the process (or its wrapper) does not end")
	}
	if werr != nil {
		return s, fmt.Errorf("exit: %w", werr)
	}
	thawed, err := waitEvent(ctx, lines, "thawed")
	if err != nil {
		return s, err
	}
	s.thawEv = thawed.ev.ElapsedMS
	return s, ct.requireThawed("cgfreeze " + how)
}

// startAgent starts cgfreeze as an ephemeral container's agent, returning
// the wrapper's command, cgfreeze's host PID and the time of its exec.
func (b *bench) startAgent(ctx context.Context, ct *container, stdout, stderr *os.File, extra ...string) (*exec.Cmd, int, time.Time, error) {
	goR, goW, err := os.Pipe()
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	defer goW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		_ = goR.Close()
		return nil, 0, time.Time{}, err
	}
	defer readyR.Close()
	argv := append([]string{"sh", "-c", agentScript, "agent", b.agentProcs, strconv.Itoa(ct.pid),
		b.tools["nsenter"], b.tools["unshare"], b.tools["mount"], b.tools["umount"], b.bin, "-o", "json"}, extra...)
	cmd := exec.Command(busybox, argv...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{goR, readyW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	_ = goR.Close()
	_ = readyW.Close()
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	fail := func(err error) (*exec.Cmd, int, time.Time, error) {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		for _, c := range children(cmd.Process.Pid) {
			_ = unix.Kill(c, unix.SIGKILL)
		}
		_ = cmd.Wait()
		return nil, 0, time.Time{}, err
	}
	_ = readyR.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1)
	if n, err := readyR.Read(buf); n != 1 || buf[0] != 'r' {
		return fail(fmt.Errorf("the agent emulation did not get ready: %w", err))
	}
	kids := children(cmd.Process.Pid)
	if len(kids) != 1 {
		return fail(fmt.Errorf("nsenter (PID %d) has children %v, want one", cmd.Process.Pid, kids))
	}
	if ctx.Err() != nil {
		return fail(context.Cause(ctx))
	}
	t0 := time.Now()
	if _, err := goW.Write([]byte("g\n")); err != nil {
		return fail(err)
	}
	return cmd, kids[0], t0, nil
}

type timedEvent struct {
	ev event
	at time.Time
}

// waitEvent reads cgfreeze's events until one named want.
func waitEvent(ctx context.Context, lines <-chan line, want string) (timedEvent, error) {
	timer := time.NewTimer(eventDeadline)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return timedEvent{}, fmt.Errorf("no %s event before its stdout closed", want)
			}
			var e event
			if err := json.Unmarshal([]byte(l.text), &e); err != nil {
				return timedEvent{}, fmt.Errorf("not an event: %q", l.text)
			}
			if e.Event == "error" {
				return timedEvent{}, fmt.Errorf("error event: %s", e.Error)
			}
			if e.Event == want {
				return timedEvent{e, l.at}, nil
			}
		case <-timer.C:
			return timedEvent{}, fmt.Errorf("no %s event within %v", want, eventDeadline)
		case <-ctx.Done():
			return timedEvent{}, context.Cause(ctx)
		}
	}
}

// waitPidfd waits until the process of a pidfd has exited.
func waitPidfd(pidfd int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return fmt.Errorf("the process did not exit within %v", limit)
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// runcPauseResume is the peer: `runc pause`, then `runc resume`, each timed
// as a whole process.
func (b *bench) runcPauseResume(ctx context.Context, ct *container) (s sample, err error) {
	if err := ct.check(); err != nil {
		return s, err
	}
	if s.freeze, err = b.runc(ctx, "pause", ct.name); err != nil {
		return s, err
	}
	if err := ct.requireFrozen("runc pause"); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	if s.thaw, err = b.runc(ctx, "resume", ct.name); err != nil {
		return s, err
	}
	return s, ct.requireThawed("runc resume")
}

// The limits: the kernel's own cost, measured in this process with the
// files opened beforehand.

// limitV1 writes FROZEN to freezer.state and re-reads it until the kernel
// says FROZEN; then writes THAWED and reads freezer.self_freezing.
func (b *bench) limitV1(ctx context.Context, ct *container) (s sample, err error) {
	if err := ct.check(); err != nil {
		return s, err
	}
	state := filepath.Join(ct.dir, "freezer.state")
	w, err := os.OpenFile(state, os.O_WRONLY, 0)
	if err != nil {
		return s, err
	}
	defer w.Close()
	r, err := os.Open(state)
	if err != nil {
		return s, err
	}
	defer r.Close()
	self, err := os.Open(filepath.Join(ct.dir, "freezer.self_freezing"))
	if err != nil {
		return s, err
	}
	defer self.Close()
	buf := make([]byte, 64)
	defer func() {
		if err != nil {
			_, _ = w.WriteString("THAWED")
		}
	}()

	t0 := time.Now()
	if _, err := w.WriteString("FROZEN"); err != nil {
		return s, err
	}
	for {
		v, err := pread(r, buf)
		if err != nil {
			return s, err
		}
		if v == "FROZEN" {
			break
		}
		if time.Since(t0) > limitDeadline || ctx.Err() != nil {
			return s, fmt.Errorf("%s still reads %s", state, v)
		}
	}
	s.freeze = time.Since(t0)
	if err := ct.requireFrozen("limit"); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	t2 := time.Now()
	if _, err := w.WriteString("THAWED"); err != nil {
		return s, err
	}
	for {
		v, err := pread(self, buf)
		if err != nil {
			return s, err
		}
		if v == "0" {
			break
		}
		if time.Since(t2) > limitDeadline {
			return s, fmt.Errorf("%s still reads %s", self.Name(), v)
		}
	}
	s.thaw = time.Since(t2)
	return s, ct.requireThawed("limit")
}

// pread reads a small cgroup file from its start: kernfs generates the
// content anew for a read at offset 0.
func pread(f *os.File, buf []byte) (string, error) {
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// events is an open cgroup.events, woken by poll(2) on its changes.
type events struct{ f *os.File }

func openEvents(dir string) (*events, error) {
	f, err := os.Open(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return nil, err
	}
	return &events{f}, nil
}

// eventsSpin is how long wait re-reads cgroup.events before it polls: the
// kernel sends at most 100 notifications a second per cgroup file and
// defers later ones by a timer, which delayed a poll's wake-up by 1 to 15 ms
// here where a re-read said frozen within 0.1 ms. After it, poll(2) with a
// 1 ms timeout.
const eventsSpin = 2 * time.Millisecond

// wait returns once the frozen key is want.
func (e *events) wait(want bool) error {
	buf := make([]byte, 256)
	t0 := time.Now()
	for {
		v, err := pread(e.f, buf)
		if err != nil {
			return err
		}
		frozen, err := frozenKey([]byte(v))
		if err != nil {
			return err
		}
		if frozen == want {
			return nil
		}
		d := time.Since(t0)
		if d > limitDeadline {
			return fmt.Errorf("%s still says frozen %v", e.f.Name(), frozen)
		}
		if d > eventsSpin {
			fds := []unix.PollFd{{Fd: int32(e.f.Fd()), Events: unix.POLLPRI}}
			if _, err := unix.Poll(fds, 1); err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
		}
	}
}

// limitDirect writes 1 to cgroup.freeze and waits until cgroup.events
// says frozen 1; then 0 and frozen 0.
func (b *bench) limitDirect(ctx context.Context, ct *container) (s sample, err error) {
	if err := ct.check(); err != nil {
		return s, err
	}
	fz, err := os.OpenFile(filepath.Join(ct.dir, "cgroup.freeze"), os.O_WRONLY, 0)
	if err != nil {
		return s, err
	}
	defer fz.Close()
	ev, err := openEvents(ct.dir)
	if err != nil {
		return s, err
	}
	defer ev.f.Close()
	defer func() {
		if err != nil {
			_, _ = fz.WriteString("0")
		}
	}()
	t0 := time.Now()
	if _, err := fz.WriteString("1"); err != nil {
		return s, err
	}
	if err := ev.wait(true); err != nil {
		return s, err
	}
	s.freeze = time.Since(t0)
	if err := ct.requireFrozen("limit"); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	t2 := time.Now()
	if _, err := fz.WriteString("0"); err != nil {
		return s, err
	}
	if err := ev.wait(false); err != nil {
		return s, err
	}
	s.thaw = time.Since(t2)
	return s, ct.requireThawed("limit")
}

// limitChild is the child cgroup the subtree limit migrates into.
const limitChild = "cgfreeze-limit"

// limitSubtree freezes an empty child of the container's cgroup (not timed),
// then times the bare loop: one write(2) of one PID per process into the
// child's cgroup.procs, opened once, re-reading the container's
// cgroup.procs until it is empty, and the wait for the child's frozen 1.
// The thaw, after quietBeforeThaw: 0 into the child's cgroup.freeze, the
// same loop back, rmdir.
func (b *bench) limitSubtree(ctx context.Context, ct *container) (s sample, err error) {
	if err := ct.check(); err != nil {
		return s, err
	}
	child := filepath.Join(ct.dir, limitChild)
	if err := os.Mkdir(child, 0o755); err != nil {
		return s, err
	}
	defer func() {
		if err != nil {
			_ = os.WriteFile(filepath.Join(child, "cgroup.freeze"), []byte("0"), 0)
			_ = migrate(child, ct.dir)
			_ = removeTree(context.Background(), child)
		}
	}()
	fz, err := os.OpenFile(filepath.Join(child, "cgroup.freeze"), os.O_WRONLY, 0)
	if err != nil {
		return s, err
	}
	defer fz.Close()
	ev, err := openEvents(child)
	if err != nil {
		return s, err
	}
	defer ev.f.Close()
	if _, err := fz.WriteString("1"); err != nil {
		return s, err
	}
	if err := ev.wait(true); err != nil {
		return s, err
	}

	t0 := time.Now()
	if err := migrate(ct.dir, child); err != nil {
		return s, err
	}
	s.loop = time.Since(t0)
	if err := ev.wait(true); err != nil {
		return s, err
	}
	s.freeze = time.Since(t0)
	if err := ct.requireFrozen("subtree-limit"); err != nil {
		return s, err
	}
	if err := sleepCtx(ctx, quietBeforeThaw); err != nil {
		return s, err
	}
	t2 := time.Now()
	if _, err := fz.WriteString("0"); err != nil {
		return s, err
	}
	if err := migrate(child, ct.dir); err != nil {
		return s, err
	}
	if err := removeTree(ctx, child); err != nil {
		return s, err
	}
	s.thaw = time.Since(t2)
	return s, ct.requireThawed("limit")
}

// migrate moves every process of src into dst, one write(2) per PID to
// dst's cgroup.procs opened once, until src lists none.
func migrate(src, dst string) error {
	out, err := os.OpenFile(filepath.Join(dst, "cgroup.procs"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	in, err := os.Open(filepath.Join(src, "cgroup.procs"))
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, 0, 64*1024)
	num := make([]byte, 0, 16)
	deadline := time.Now().Add(limitDeadline)
	for {
		buf, err = readAllAt(in, buf[:0])
		if err != nil {
			return err
		}
		pids, err := parsePIDs(buf)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still in %s", len(pids), src)
		}
		for _, pid := range pids {
			num = strconv.AppendInt(num[:0], int64(pid), 10)
			if _, err := out.Write(num); err != nil {
				if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL) {
					continue // gone, or in the middle of an exit: the next round sees
				}
				return err
			}
		}
	}
}

// readAllAt reads a whole kernfs file from offset 0 into buf.
func readAllAt(f *os.File, buf []byte) ([]byte, error) {
	off := int64(0)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.ReadAt(buf[len(buf):cap(buf)], off)
		buf = buf[:len(buf)+n]
		off += int64(n)
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// holdStat is what a freeze costs while it holds: every process of
// cgfreeze's (the one started and its descendants: today the supervisor and
// its child `cgfreeze __hold`, the holder), each and together.
type holdStat struct {
	dur   time.Duration
	procs []procStat
	// floor is the C look loop (floor look) over the same window: the
	// same files re-read at the same period as the strategy's hold.
	floor procStat
}

// holdLooks is what an idle hold of each strategy re-reads, and how often:
// freezer's v1HoldFullEvery (freezer.self_freezing, freezer.state and the
// /proc/<PID>/cgroup of the process it was resolved from; the owner's thaw
// is a write, which inotify reports), directHoldFallback (cgroup.freeze and
// cgroup.events) and subtreeJoinScan (cgroup.procs). The C loop that makes
// the same looks is the idle floor.
func holdLooks(ct *container, subtree bool) (period time.Duration, files []string) {
	switch {
	case subtree:
		return 50 * time.Millisecond, []string{filepath.Join(ct.dir, "cgroup.procs")}
	case ct.version == 1:
		return time.Second, []string{filepath.Join(ct.dir, "freezer.self_freezing"), filepath.Join(ct.dir, "freezer.state"), fmt.Sprintf("/proc/%d/cgroup", ct.pid)}
	default:
		return time.Second, []string{filepath.Join(ct.dir, "cgroup.freeze"), filepath.Join(ct.dir, "cgroup.events")}
	}
}

type procStat struct {
	what     string // its command line, argv[1:] (the started one: "cgfreeze")
	cpu      time.Duration
	switches int64 // context switches: each is a wake-up
	threads  int
	pss, hwm int64 // KiB: Pss of smaps_rollup, VmHWM
}

func (st holdStat) total() (p procStat) {
	for _, x := range st.procs {
		p.cpu += x.cpu
		p.switches += x.switches
		p.threads += x.threads
		p.pss += x.pss
		p.hwm = max(p.hwm, x.hwm)
	}
	return p
}

// descendants lists pid and every process below it, parents first.
func descendants(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children(out[i])...)
	}
	return out
}

// hold measures one freeze held for b.o.hold: the CPU time and wake-ups of
// every thread of every cgfreeze process over that time (from
// /proc/PID/task/*/schedstat, nanoseconds), their proportional set size
// (Pss in /proc/PID/smaps_rollup: the pages of the binary that both share
// count once, split between them, where RSS counts them in each) and peak
// RSS.
func (b *bench) hold(ctx context.Context, ct *container, subtree bool) (holdStat, error) {
	var st holdStat
	during := func(started int) error {
		period, files := holdLooks(ct, subtree)
		look := exec.Command(b.floorC, append([]string{"look", strconv.FormatInt(period.Milliseconds(), 10)}, files...)...)
		var lookErr strings.Builder
		look.Stderr = &lookErr
		if err := look.Start(); err != nil {
			return fmt.Errorf("the C look loop: %w", err)
		}
		defer func() {
			_ = look.Process.Kill()
			_ = look.Wait()
		}()
		// Let the start settle before the window.
		if err := sleepCtx(ctx, time.Second); err != nil {
			return err
		}
		pids := descendants(started)
		before := make([]taskStat, len(pids))
		for i, p := range pids {
			var err error
			if before[i], err = taskStats(p); err != nil {
				return err
			}
		}
		lookBefore, err := taskStats(look.Process.Pid)
		if err != nil {
			return fmt.Errorf("the C look loop: %w; its stderr: %q", err, lookErr.String())
		}
		t0 := time.Now()
		if err := sleepCtx(ctx, b.o.hold); err != nil {
			return err
		}
		st.dur = time.Since(t0)
		lookAfter, err := taskStats(look.Process.Pid)
		if err != nil {
			return fmt.Errorf("the C look loop ended during the hold: %w; its stderr: %q", err, lookErr.String())
		}
		if lookAfter.threads == 0 {
			return fmt.Errorf("the C look loop ended during the hold; its stderr: %q", lookErr.String())
		}
		st.floor = procStat{what: "C look loop", cpu: lookAfter.cpu - lookBefore.cpu, switches: lookAfter.switches - lookBefore.switches, threads: lookAfter.threads}
		if now := descendants(started); !slices.Equal(now, pids) {
			return fmt.Errorf("cgfreeze's processes changed during the hold: %v, then %v", pids, now)
		}
		for i, p := range pids {
			after, err := taskStats(p)
			if err != nil {
				return err
			}
			ps := procStat{cpu: after.cpu - before[i].cpu, switches: after.switches - before[i].switches, threads: after.threads}
			ps.hwm, _ = statusKB(p, "VmHWM")
			if ps.pss, err = pssKB(p); err != nil {
				return err
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
			ps.what = strings.Join(append([]string{"cgfreeze"}, args[min(1, len(args)):]...), " ")
			if i == 0 {
				ps.what = "cgfreeze (started)"
			} else if len(args) > 1 && strings.HasPrefix(args[1], "__") {
				ps.what = "cgfreeze " + args[1]
			}
			st.procs = append(st.procs, ps)
		}
		return nil
	}
	_, err := b.cgfreeze(ctx, ct, subtree, during)
	return st, err
}

// pssKB reads the Pss line of /proc/PID/smaps_rollup, in KiB.
func pssKB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss", pid)
}

type taskStat struct {
	cpu      time.Duration
	switches int64
	threads  int
}

func taskStats(pid int) (taskStat, error) {
	var st taskStat
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return st, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // a thread that ended
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		st.cpu += time.Duration(ns)
		st.threads++
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		for _, l := range strings.Split(string(status), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				st.switches += n
			}
		}
	}
	return st, nil
}

// statusKB reads a "kB" field of /proc/PID/status.
func statusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, key)
}

// startTime is the wall time of a whole process, exec to exit.
func startTime(ctx context.Context, argv ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	start := time.Now()
	err := cmd.Run()
	return time.Since(start), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
