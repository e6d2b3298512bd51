package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes of issue 9 (docs/usage.md).
const (
	exitOutputClosed = 15
	// exitTargetGone: the target's cgroup emptied or was removed during the hold.
	exitTargetGone = 13
)

// guardKinds are the strategies: v1 freezer, v2 direct, v2 subtree.
var guardKinds = []kind{kindV1, kindDirect, kindSubtree}

// Limits of docs/design.md's Guarantees.
const (
	// guardLimit: whichever of supervisor and holder dies, the other
	// restores the target within a second.
	guardLimit = time.Second
	// onTimeLimit: a signal or --duration acts on time whatever stdout
	// does; the thaw itself takes milliseconds.
	onTimeLimit = time.Second
	// blockedExitLimit: with stdout blocked, cgfreeze exits this long
	// after the thaw at the latest (it waits 500 ms to flush its events).
	blockedExitLimit = 3 * time.Second
)

// frozenNow tells whether the kernel has the target frozen now, the way
// its kind does it (for a run whose events cannot be read).
func (tg *target) frozenNow() bool {
	switch tg.kind {
	case kindV1:
		st, err := tg.cg.read("freezer.state")
		return err == nil && st == "FROZEN"
	case kindSubtree:
		// The workload was moved into a frozen child of the target, and
		// the migration is over: the target's own cgroup lists no
		// process. Until then a process the workload forked before the
		// move runs, and may exit, as the freeze allows (its frozen
		// event comes only after the migration, and these tests may not
		// read it).
		p, err := procCgroup(tg.w.pid, 2)
		if err != nil || p == tg.cg.rel {
			return false
		}
		if own, err := tg.cg.procs(); err != nil || len(own) > 0 {
			return false
		}
		child := &cgroup{version: 2, dir: filepath.Join(cg2Mount, p), rel: p}
		v, err := child.frozen()
		return err == nil && v == "1"
	}
	v, err := tg.cg.frozen()
	return err == nil && v == "1"
}

// waitFrozenNow waits until the target is frozen.
func (tg *target) waitFrozenNow(r *run) time.Time {
	h := tg.h
	h.t.Helper()
	deadline := time.Now().Add(eventDeadline)
	for !tg.frozenNow() {
		if time.Now().After(deadline) || !r.running() {
			h.t.Fatalf("the target is not frozen: %s", r.describe())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Now()
}

// startCgfreezeOut starts argv with stdout on the given file and nothing
// reading it here: the run has no events.
func (h *harness) startCgfreezeOut(desc string, argv []string, stdout *os.File) *run {
	h.t.Helper()
	r := &run{h: h, desc: desc, events: make(chan event), exited: make(chan struct{})}
	close(r.events)
	r.stderr = filepath.Join(h.dir, fmt.Sprintf("cgfreeze%d.stderr", len(h.runs)))
	errf, err := os.Create(r.stderr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = errf.Close() }()
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Stdout, r.cmd.Stderr = stdout, errf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		h.t.Fatalf("start %s: %v", desc, err)
	}
	h.runs = append(h.runs, r)
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	return r
}

// fullPipe returns a pipe whose buffer is full: a write to it blocks until
// someone reads, and nobody does.
func (h *harness) fullPipe() (r, w *os.File) {
	h.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	// Fd puts the file in blocking mode, each time it is called: once.
	fd := int(w.Fd())
	size, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		h.t.Fatal(err)
	}
	buf := make([]byte, size)
	for i := 0; ; i++ {
		if _, err := unix.Write(fd, buf); errors.Is(err, unix.EAGAIN) {
			break // full
		} else if err != nil || i > 64 {
			h.t.Fatalf("fill a pipe of %d bytes: %v after %d writes", size, err, i)
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		h.t.Fatal(err)
	}
	return r, w
}

// exitCode waits for the run's exit (within limit of since) and returns
// its code; a death by a signal fails the test.
func (r *run) exitCodeWithin(since time.Time, limit time.Duration) int {
	r.h.t.Helper()
	select {
	case <-r.exited:
	case <-time.After(time.Until(since.Add(limit))):
		r.h.t.Fatalf("still running %v later: %s", limit, r.describe())
	}
	if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.h.t.Fatalf("killed by %v: %s", ws.Signal(), r.describe())
	}
	return r.cmd.ProcessState.ExitCode()
}

// TestSupervisorKilled (issue 9, case 1): the caller SIGKILLs the process
// it started (exec.CommandContext's cancel, timeout -s KILL), once it has
// handed the hold over (a kill before: TestFaults' supervisor:* steps). The holder
// notices on its channel, thaws the target within a second (reason
// supervisor_gone) and ends; `cgfreeze thaw` afterwards finds nothing to do.
func TestSupervisorKilled(t *testing.T) {
	for _, k := range guardKinds {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			before := h.snapshot(tg.cg)
			r := tg.start("")
			r.waitEvent("frozen")
			tg.requireFrozen("frozen")
			tg.waitHandedOver(r)
			supervisor, holder := r.cgfreezePid(), r.holderProcess()
			killed := time.Now()
			if err := unix.Kill(supervisor, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			took := tg.waitRestored("after SIGKILL of the supervisor", killed, 5*time.Second)
			t.Logf("restored %v after the supervisor's SIGKILL", took.Round(100*time.Microsecond))
			if took > guardLimit {
				t.Errorf("the holder restored the target %v after its supervisor died, more than %v", took, guardLimit)
			}
			e := r.waitEvent("thawed")
			if e.Reason != "supervisor_gone" {
				t.Errorf("thawed event %s: want reason supervisor_gone", e.raw)
			}
			tg.requireBase(e)
			h.waitGone("the holder", holder)
			rt := tg.start("thaw")
			if te := rt.nextEvent(); te.Event != "nothing_to_thaw" {
				t.Errorf("cgfreeze thaw after the supervisor's death: event %s, want nothing_to_thaw: %s", te.raw, rt.describe())
			}
			if code := rt.wait(); code != 0 {
				t.Errorf("cgfreeze thaw exited %d, want 0: %s", code, rt.describe())
			}
			h.requireProgress("after the supervisor's death", tg.w)
			h.requireSameCgroups("after the supervisor's death", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestBlockedOutput (issue 9, case 2): stdout is a pipe that nobody reads
// (full from the start: even the frozen event cannot be written). SIGTERM
// and --duration still end the hold on time, cgfreeze exits 0 a bounded
// time later, and nothing is left.
func TestBlockedOutput(t *testing.T) {
	for _, k := range guardKinds {
		for _, end := range []string{"signal", "duration"} {
			t.Run(string(k)+"/"+end, func(t *testing.T) {
				h := newHarness(t)
				tg := h.newTarget(k, targetOpts{mode: "fork"})
				before := h.snapshot(tg.cg)
				_, w := h.fullPipe()
				var extra []string
				const duration = time.Second
				if end == "duration" {
					extra = []string{"--duration", duration.String()}
				}
				r := h.startCgfreezeOut("cgfreeze with a blocked stdout ("+string(k)+")", tg.argv("", extra...), w)
				frozenAt := tg.waitFrozenNow(r)
				h.requireStill("held with a blocked stdout", tg.cg, stillFor, tg.w)
				from := frozenAt.Add(duration)
				if end == "signal" {
					from = time.Now()
					r.signal(syscall.SIGTERM)
				}
				took := tg.waitRestored("with a blocked stdout, after the "+end, from, 5*time.Second)
				t.Logf("restored %v after the %s was due", took.Round(100*time.Microsecond), end)
				if took > onTimeLimit {
					t.Errorf("the %s took effect %v late with a blocked stdout, more than %v", end, took, onTimeLimit)
				}
				if code := r.exitCodeWithin(time.Now(), blockedExitLimit); code != 0 {
					t.Errorf("exit %d with a blocked stdout, want 0: %s", code, r.describe())
				}
				for _, pid := range cgfreezeProcesses() {
					h.waitGone("a cgfreeze process", pid)
				}
				h.requireProgress("after the hold", tg.w)
				h.requireSameCgroups("after the hold", before, tg.w.pid)
				h.checkLeftovers()
			})
		}
	}
}

// TestOutputClosed (issue 9, cases 2 and 9): `cgfreeze | head -c1`: the
// reader takes one byte of the frozen event and goes away. cgfreeze
// notices while it writes nothing, thaws, and exits 15 (never 141, the
// death by SIGPIPE); nothing is left.
func TestOutputClosed(t *testing.T) {
	for _, k := range guardKinds {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork", nested: true})
			before := h.snapshot(tg.cg)
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r := h.startCgfreezeOut("cgfreeze | head -c1 ("+string(k)+")", tg.argv(""), pw)
			_ = pw.Close()
			b := make([]byte, 1)
			if _, err := pr.Read(b); err != nil {
				t.Fatalf("read the first byte: %v: %s", err, r.describe())
			}
			tg.requireFrozen("frozen, the first byte read")
			closed := time.Now()
			_ = pr.Close()
			took := tg.waitRestored("after stdout closed", closed, 5*time.Second)
			t.Logf("restored %v after stdout closed", took.Round(100*time.Microsecond))
			if took > onTimeLimit {
				t.Errorf("restored %v after stdout closed, more than %v", took, onTimeLimit)
			}
			if code := r.exitCodeWithin(closed, blockedExitLimit); code != exitOutputClosed {
				t.Errorf("exit %d after stdout closed, want %d: %s", code, exitOutputClosed, r.describe())
			}
			for _, pid := range cgfreezeProcesses() {
				h.waitGone("a cgfreeze process", pid)
			}
			h.requireProgress("after stdout closed", tg.w)
			h.requireSameCgroups("after stdout closed", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestHolderKilledAfterDone (issue 9, case 9): the holder dies after it
// told its supervisor that the target is thawed: the run is a success
// (exit 0, not 255), and the supervisor does not recover anything.
func TestHolderKilledAfterDone(t *testing.T) {
	for _, k := range guardKinds {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{mode: "fork"})
			before := h.snapshot(tg.cg)
			t.Setenv("CGFREEZE_FAULT", "holder:done:kill")
			r := tg.start("", "--log-level", "debug")
			r.waitEvent("frozen")
			r.signal(syscall.SIGTERM)
			// The thawed event may be lost with the holder: it is written
			// after the done message, by the holder's writer.
			for {
				e, ok, timedOut := r.next(eventDeadline)
				if timedOut {
					t.Fatalf("no end after SIGTERM: %s", r.describe())
				}
				if !ok {
					break
				}
				if e.Event != "thawed" {
					t.Errorf("event %s after SIGTERM, want thawed or none (no watchdog recovery)", e.raw)
				}
			}
			if code := r.exitCodeWithin(time.Now(), exitDeadline); code != 0 {
				t.Errorf("exit %d after the holder died after done, want 0: %s", code, r.describe())
			}
			// The supervisor saw the holder die by the injected SIGKILL.
			if errb, _ := os.ReadFile(r.stderr); !strings.Contains(string(errb), "the holder was killed after the target was thawed") {
				t.Errorf("the supervisor does not log the holder's death after done: %s", r.describe())
			}
			tg.waitRestored("after the holder's death after done", time.Now(), time.Second)
			h.requireProgress("after the hold", tg.w)
			h.requireSameCgroups("after the hold", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}
