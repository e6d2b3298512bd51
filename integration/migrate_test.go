package integration

import (
	"context"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestSubtreeKilledDuringMigration is issue 9's case 8: the subtree
// strategy moves a target's processes while they are killed en masse. A
// dying task stays listed in cgroup.procs, and accepts the write, until it
// is gone; the migration must count it once (a frozen event once said
// 151842 processes for 5000) and wait for it with a back-off instead of
// spinning. The freeze completes, its count is at most what ever ran, and
// the thaw restores what is left.
func TestSubtreeKilledDuringMigration(t *testing.T) {
	const n = 2000
	h := newHarness(t)
	tg := h.newTarget(kindSubtree, targetOpts{})
	// n sleepers in the target's PID namespace and cgroup, started by a
	// shell that moves itself there first.
	spawn := "echo $$ > " + tg.cg.file("cgroup.procs") + " || exit 97; i=0; while [ $i -lt " + strconv.Itoa(n) + " ]; do " + busybox + " sleep 1000 & i=$((i+1)); done; wait"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spawner := exec.CommandContext(ctx, nsenterPath, "--target", strconv.Itoa(tg.w.pid), "--pid", "--", busybox, "sh", "-c", spawn)
	if err := spawner.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = spawner.Wait() }()
	deadline := time.Now().Add(startDeadline)
	var sleepers []int
	for {
		pids, err := tg.cg.procs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) >= n+2 {
			for _, pid := range pids {
				if pid != tg.w.pid {
					sleepers = append(sleepers, pid)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes in the target after %v, want %d", len(pids), startDeadline, n+2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := len(sleepers) + 1

	r := tg.start("")
	// Kill them all as soon as the migration starts: when the frozen
	// child exists.
	deadline = time.Now().Add(startDeadline)
	for tg.cg.ownChild() == nil {
		if time.Now().After(deadline) || !r.running() {
			t.Fatalf("no cgfreeze child appeared: %s", r.describe())
		}
		time.Sleep(100 * time.Microsecond)
	}
	for _, pid := range sleepers {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	frozen := r.waitEvent("frozen")
	t.Logf("frozen after the mass kill: %s", frozen.raw)
	if frozen.Processes == nil || *frozen.Processes > total {
		t.Errorf("frozen event %s: want processes <= %d (every process counted once)", frozen.raw, total)
	}
	r.signal(syscall.SIGTERM)
	r.waitEvent("thawed")
	if code := r.wait(); code != 0 {
		t.Errorf("exit %d after the thaw: %s", code, r.describe())
	}
	h.requireProgress("after the thaw", tg.w)
	cancel()
	h.checkLeftovers()
}
