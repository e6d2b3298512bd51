//go:build linux

package procs

import (
	"math"
	"os"
	"slices"
	"testing"
)

// The two readers of a proc directory together list every process that the
// directory listed before and after them, once each and in order, wherever
// the split falls: before every PID, among them, past the last.
func TestListSplit(t *testing.T) {
	before, err := listSequential("/proc")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(before)
	if len(before) < 2 {
		t.Fatalf("/proc lists %v", before)
	}
	splits := []int{1, before[len(before)/2], before[len(before)-1], before[len(before)-1] + 1, math.MaxInt32 - procTGIDOffset}
	for _, split := range splits {
		got, err := listSplit("/proc", split)
		if err != nil {
			t.Fatalf("split at %d: %v", split, err)
		}
		after, err := listSequential("/proc")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("split at %d: %v is not in increasing order, or lists a PID twice", split, got)
		}
		for _, pid := range before {
			if slices.Contains(after, pid) && !slices.Contains(got, pid) {
				t.Errorf("split at %d: PID %d, listed before and after, is missing", split, pid)
			}
		}
		if !slices.Contains(got, os.Getpid()) {
			t.Errorf("split at %d: the test's own PID %d is missing", split, os.Getpid())
		}
	}
}

// A directory that is no proc filesystem is read by one reader, whatever
// the hint says.
func TestListPIDsNotProcfs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"1", "17", "self", "x2"} {
		if err := os.Mkdir(dir+"/"+name, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir+"/sys/kernel", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/sys/kernel/ns_last_pid", []byte("40000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ListPIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 17}) {
		t.Fatalf("ListPIDs(%s) = %v, want [1 17]", dir, got)
	}
}
