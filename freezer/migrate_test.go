//go:build linux

package freezer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCgroupProcs stands in for a source cgroup.procs: moving a PID takes
// it off the list, except for the dying ones, which stay listed (and
// writable) for lingerRounds more reads, as an exiting task does.
type fakeCgroupProcs struct {
	listed       []int
	dying        map[int]int // PID -> reads it is still listed after its move
	forks        map[int]int // PID -> a child it forks when it moves
	reads, moves int
	sleeps       []time.Duration
}

func (f *fakeCgroupProcs) list() ([]int, error) {
	f.reads++
	out := slices.Clone(f.listed)
	var keep []int
	for _, pid := range f.listed {
		if n, ok := f.dying[pid]; ok && n > 0 {
			f.dying[pid] = n - 1
			keep = append(keep, pid)
		}
	}
	f.listed = keep
	return out, nil
}

func (f *fakeCgroupProcs) move(pid int) (bool, error) {
	f.moves++
	if child, ok := f.forks[pid]; ok {
		delete(f.forks, pid)
		f.listed = append(f.listed, child)
	}
	return true, nil
}

func (f *fakeCgroupProcs) sleep(d time.Duration) { f.sleeps = append(f.sleeps, d) }

func runMigrateLoop(t *testing.T, f *fakeCgroupProcs) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return migrateLoop(ctx, "/src", f.list, f.move, "test:halfway", f.sleep)
}

// TestMigrateCountsOnce is issue 9's case 8: a dying task that is still
// listed, and still accepts the write, for many rounds is counted once,
// and the rounds that move nothing new sleep with a bounded back-off
// instead of spinning.
func TestMigrateCountsOnce(t *testing.T) {
	f := &fakeCgroupProcs{listed: []int{10, 11, 12}, dying: map[int]int{11: 40}}
	n, err := runMigrateLoop(t, f)
	if err != nil || n != 3 {
		t.Fatalf("migrate = %d, %v; want 3 processes, nil", n, err)
	}
	if len(f.sleeps) != 40 {
		t.Errorf("slept %d times while the dying task lingered 40 rounds, want 40", len(f.sleeps))
	}
	for i, d := range f.sleeps {
		if d < lingerPauseMin || d > lingerPauseMax {
			t.Errorf("sleep %d: %v, outside [%v, %v]", i, d, lingerPauseMin, lingerPauseMax)
		}
	}
	if last := f.sleeps[len(f.sleeps)-1]; last != lingerPauseMax {
		t.Errorf("the back-off ends at %v, want %v", last, lingerPauseMax)
	}
	if f.sleeps[0] != lingerPauseMin || f.sleeps[1] != 2*lingerPauseMin {
		t.Errorf("the back-off starts %v, %v; want %v doubling", f.sleeps[0], f.sleeps[1], lingerPauseMin)
	}
}

// TestMigrateForks: a process forked meanwhile is caught by the next round
// without a sleep, and counted; the back-off starts again from the
// shortest pause after a round that moved something new.
func TestMigrateForks(t *testing.T) {
	f := &fakeCgroupProcs{listed: []int{1, 2}, forks: map[int]int{2: 3}, dying: map[int]int{1: 3, 3: 1}}
	n, err := runMigrateLoop(t, f)
	if err != nil || n != 3 {
		t.Fatalf("migrate = %d, %v; want 3, nil", n, err)
	}
	// Round 1 moves 1 and 2 (2 forks 3), round 2 moves 3 (new), round 3
	// lists 1 and 3 again (dying), round 4 lists 1: two sleeps.
	if want := []time.Duration{lingerPauseMin, 2 * lingerPauseMin}; !slices.Equal(f.sleeps, want) {
		t.Errorf("sleeps %v, want %v", f.sleeps, want)
	}
}

// TestMigrateEdges: PIDs listed twice in a round are written once; a gone
// process is not counted; processes outside the PID namespace (listed as
// 0) cannot be moved; a cancelled context ends the loop; a listing error
// is returned.
func TestMigrateEdges(t *testing.T) {
	ctx := context.Background()
	calls := 0
	list := func() ([]int, error) {
		calls++
		if calls == 1 {
			return []int{5, 5, 6}, nil
		}
		return nil, nil
	}
	var written []int
	move := func(pid int) (bool, error) { written = append(written, pid); return pid != 6, nil }
	n, err := migrateLoop(ctx, "/src", list, move, "test:halfway", func(time.Duration) {})
	if err != nil || n != 1 || !slices.Equal(written, []int{5, 6}) {
		t.Errorf("migrate = %d, %v, wrote %v; want 1, nil, [5 6]", n, err, written)
	}

	hidden := func() ([]int, error) { return []int{0, 0}, nil }
	if _, err := migrateLoop(ctx, "/src", hidden, move, "test:halfway", func(time.Duration) {}); err == nil || !strings.Contains(err.Error(), "outside cgfreeze's PID namespace") {
		t.Errorf("migrate of hidden processes: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	always := func() ([]int, error) { return []int{7}, nil }
	if _, err := migrateLoop(cancelled, "/src", always, move, "test:halfway", func(time.Duration) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("migrate with a cancelled context: %v, want context.Canceled", err)
	}

	boom := errors.New("boom")
	failing := func() ([]int, error) { return nil, boom }
	if _, err := migrateLoop(ctx, "/src", failing, move, "test:halfway", func(time.Duration) {}); !errors.Is(err, boom) {
		t.Errorf("migrate with a failing list: %v", err)
	}
}
