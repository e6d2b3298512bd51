//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"
)

// eventsScript makes the fake kernel's cgroup.events of some cgroups say
// "frozen" as a test scripts it, once the target's cgroup.freeze was
// written 1: each read of such a file takes the next value of its list,
// and says what the fake kernel's state says once the list is used up.
// reads tells how many times a cgroup's cgroup.events was read since that
// write.
type eventsScript struct {
	mu      sync.Mutex
	written bool
	script  map[string][]int // cgroup key -> frozen values, one per read
	reads   map[string]int
}

var frozenLine = regexp.MustCompile(`(?m)^frozen [01]$`)

func scriptEvents(ft fakeTarget, script map[string][]int) *eventsScript {
	s := &eventsScript{script: map[string][]int{}, reads: map[string]int{}}
	for cg, vs := range script {
		s.script[cgKey(cg)] = vs
	}
	ft.k.BeforeWrite(func(p, value string) {
		if p == cgKey(fakeTargetPath)+"/cgroup.freeze" && value == "1" {
			s.mu.Lock()
			s.written = true
			s.mu.Unlock()
		}
	})
	kernel := ft.k.Fake.OnRead
	ft.k.Fake.OnRead = func(p string) (string, bool, error) {
		v, ok, err := kernel(p)
		cg, name := cgKey("/"+p[:max(0, len(p)-len("/cgroup.events"))]), p[max(0, len(p)-len("cgroup.events")):]
		if err != nil || !ok || name != "cgroup.events" {
			return v, ok, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.written {
			return v, ok, err
		}
		s.reads[cg]++
		if q := s.script[cg]; len(q) > 0 {
			v = frozenLine.ReplaceAllString(v, fmt.Sprintf("frozen %d", q[0]))
			s.script[cg] = q[1:]
		}
		return v, ok, err
	}
	return s
}

func (s *eventsScript) readsOf(cg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads[cgKey(cg)]
}

// A target without child cgroups that the kernel froze at once is
// confirmed by two reads of its cgroup.events after the write (the read
// right after it and the read again), with the listing that finds no child
// between them.
func TestWaitTreeFrozenLeafTwoReads(t *testing.T) {
	ft := newFakeTarget(t, StrategyDirect, 101)
	s := scriptEvents(ft, nil)
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.readsOf(fakeTargetPath); n != 2 {
		t.Errorf("cgroup.events read %d times after the write, want 2", n)
	}
	if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after Thaw", map[int]string{101: fakeTargetPath})
}

// A "frozen 1" that drops back to 0 when read again (seen on Linux 6.18 in
// a freeze right after a thaw) is not a confirmation: the freeze waits
// again, and is confirmed once a read and the read again both say frozen.
func TestWaitTreeFrozenLeafDropBack(t *testing.T) {
	ft := newFakeTarget(t, StrategyDirect, 101)
	s := scriptEvents(ft, map[string][]int{fakeTargetPath: {1, 0, 0, 1, 0}})
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatal(err)
	}
	// 1 then 0 (dropped back), 0, 1 then 0 (dropped back again), then
	// the kernel's 1 twice.
	if n := s.readsOf(fakeTargetPath); n != 7 {
		t.Errorf("cgroup.events read %d times after the write, want 7", n)
	}
	if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after Thaw", map[int]string{101: fakeTargetPath})
}

// A target whose "frozen 1" drops back for good is never confirmed: the
// freeze fails at its deadline and is rolled back.
func TestWaitTreeFrozenLeafNeverStable(t *testing.T) {
	ft := newFakeTarget(t, StrategyDirect, 101)
	flicker := make([]int, 0, 20000)
	for range cap(flicker) / 2 {
		flicker = append(flicker, 1, 0)
	}
	scriptEvents(ft, map[string][]int{fakeTargetPath: flicker})
	_, err := Freeze(testCtx(t, 300*time.Millisecond), ft.Target)
	if !errors.Is(err, ErrFreezeFailed) || errors.Is(err, ErrThawFailed) {
		t.Fatalf("Freeze = %v, want ErrFreezeFailed, rolled back", err)
	}
	ft.requireRestored(t, "after the rollback", map[int]string{101: fakeTargetPath})
}

// In a tree, a child that says "frozen 0" while the target says 1 is waited
// for, and the freeze is confirmed only by a whole pass over the tree after
// that wait, which reads the target and the child again.
func TestWaitTreeFrozenChildLate(t *testing.T) {
	ft := newFakeTarget(t, StrategyDirect, 101)
	ft.k.MustMkdir(ft.sub("worker"))
	ft.k.Start(ft.sub("worker"), 201)
	s := scriptEvents(ft, map[string][]int{ft.sub("worker"): {0, 0}})
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatal(err)
	}
	// The target: its read after the write and the whole pass's. The
	// child: 0, 0, the kernel's 1, and the whole pass's.
	if n, m := s.readsOf(fakeTargetPath), s.readsOf(ft.sub("worker")); n != 2 || m != 4 {
		t.Errorf("cgroup.events read %d times on the target and %d on the child after the write, want 2 and 4", n, m)
	}
	if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after Thaw", map[int]string{101: fakeTargetPath, 201: ft.sub("worker")})
}
