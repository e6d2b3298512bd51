package main

import (
	"strings"
	"testing"
	"time"
)

// TestRunsAggregate checks the figures over whole runs: the median of the
// runs' medians with their min–max, and ratios taken within each run.
func TestRunsAggregate(t *testing.T) {
	r := newResults(options{runs: 3, sizes: []int{1, 1000}})
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	// Per run: cgfreeze 10, 11, 12 (medians of three rounds); crun 5, 10,
	// 6: the ratios per run are 2, 1.1, 2; the ratio of the medians of
	// the medians (11/6) would be neither.
	for run, v := range []struct{ c, k float64 }{{10, 5}, {11, 10}, {12, 6}} {
		for _, d := range []float64{-1, 0, 3} {
			r.add("v1", 1000, "cgfreeze", sample{freeze: ms(v.c + d), run: run})
			r.add("v1", 1000, "crun", sample{freeze: ms(v.k + d/10), confirm: ms(1), run: run})
		}
	}
	a := r.stat("v1", 1000, "cgfreeze", series.freeze)
	if a.med != ms(11) || a.lo != ms(10) || a.hi != ms(12) || a.runs != 3 {
		t.Errorf("stat = %+v, want 11 (10–12) over 3 runs", a)
	}
	if got := a.cell(); got != "11.00 (10.00–12.00)" {
		t.Errorf("cell = %q", got)
	}
	q := r.ratio("v1", 1000, "crun", series.freeze)
	if q.med != 2 || q.lo != 1.1 || q.hi != 2 {
		t.Errorf("ratio = %+v, want 2 (1.1–2)", q)
	}
	// With crun's confirmation (1 ms) added: 10/6, 11/11, 12/7.
	c := r.ratioOf(r.of("v1", 1000, "cgfreeze", series.freeze, 0), r.crunConfirmed("v1", 1000, false))
	if c.lo != 1 || c.med != 10.0/6 || c.hi != 12.0/7 {
		t.Errorf("ratio to crun + confirm = %+v", c)
	}
	// No samples at 1 process: the size is left out, not judged.
	ok, d := r.perSize(func(n int) ratioAgg { return r.ratio("v1", n, "crun", series.freeze) }, 1)
	if ok || !strings.Contains(d, "above 1.0 at 1000 processes") || strings.Contains(d, "1: ") {
		t.Errorf("perSize at 1 = %v, %q", ok, d)
	}
	if ok, _ := r.perSize(func(n int) ratioAgg { return r.ratio("v1", n, "crun", series.freeze) }, 2); !ok {
		t.Error("perSize at 2: not met")
	}
	// Judged only from 5000 processes on: nothing to judge.
	if ok, d := r.perSize(func(n int) ratioAgg { return r.ratio("v1", n, "crun", series.freeze) }, 1, 5000); ok || !strings.Contains(d, "not judged") {
		t.Errorf("perSize from 5000 = %v, %q", ok, d)
	}
}

// TestDynamicBinRefused checks that a dynamically linked binary is told
// apart from a static one, and that the refusal says how to build.
func TestDynamicBinRefused(t *testing.T) {
	for file, want := range map[string]bool{"/bin/true": false, busybox: true} {
		static, err := isStatic(file)
		if err != nil {
			t.Fatalf("isStatic(%s): %v", file, err)
		}
		if static != want {
			t.Errorf("isStatic(%s) = %v, want %v", file, static, want)
		}
	}
	if err := notStatic("/tmp/x"); !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("the refusal does not say how to build: %v", err)
	}
}
