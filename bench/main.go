// Command bench measures how long cgfreeze takes to freeze and thaw a runc
// container of 1 to 5000 processes, against its anchors: `runc pause` /
// `runc resume` on the same container, `crun pause` / `crun resume` on a
// crun container of the same layout (crun can only pause its own), the
// floors (a C and a Go program, built at bench time from bench/floor and
// bench/floorgo, that do only read-open-write-confirm, with and without a
// watchdog child) and the kernel's own cost measured in-process; on cgroup
// v1 (freezer.state) and on cgroup v2 (direct: cgroup.freeze; subtree: PID
// migration into a frozen child, from an agent in the container's PID
// namespace, as `kubectl debug --target` runs it). It also measures the
// proportional set size (PSS) and CPU time of all cgfreeze processes while
// they hold a freeze, and the size of the binary, and writes a report with
// tables, the goals of issue 10 and an SVG plot. Runs drift from one to the
// next: it repeats the whole run (-runs) and reports the median of the
// runs' medians with their spread, comparing methods only within a run.
//
// It is not part of the test suite. Run it as root, under the lock that the
// integration suite takes (it switches cgroup2 options for the whole
// machine for a while):
//
//	bash bench/run.sh        # 3 runs of 13 rounds: writes docs/performance.md and docs/performance.svg
//	bash bench/run.sh -reps 5 -sizes 1,1000 -runs 1 -hold 5s  # a quick look (prints the report, -out to write it)
//
// Everything it creates is named cgfreeze-bench-*: the runc and crun
// containers, their cgroups, a temporary directory (the builds, the
// runtimes' state: runc --root and crun --root there). It only ever freezes
// those cgroups. It removes all of it at the end, on error and on Ctrl-C; if
// it is killed, the outer process (the inner one runs in a private mount
// namespace) removes what is left and restores the cgroup2 options.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/cgtest"
)

// innerEnv carries the run's ID from the outer process to the inner one,
// which runs in a private mount namespace.
const innerEnv = "CGFREEZE_BENCH_INNER"

type options struct {
	sizes    []int
	reps     int
	hold     time.Duration
	holdSize int
	out      string
	svg      string
	src      string
	bin      string
	warmup   int
	runs     int
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	sizes := fs.String("sizes", "1,100,1000,5000", "process counts of the target containers")
	fs.IntVar(&o.reps, "reps", 13, "measured repetitions of each method on each target, in each run")
	fs.IntVar(&o.warmup, "warmup", 2, "unmeasured repetitions first")
	fs.IntVar(&o.runs, "runs", 3, "whole runs (every size and version, containers anew): the report takes the median of the runs' medians and their spread")
	fs.DurationVar(&o.hold, "hold", 60*time.Second, "how long cgfreeze's CPU time is measured while it holds a freeze (in the first run)")
	fs.IntVar(&o.holdSize, "hold-size", 1000, "the target size on which the hold is measured")
	fs.StringVar(&o.out, "out", "", "the Markdown report to write (its generated part); empty: print the report")
	fs.StringVar(&o.svg, "svg", "", "the SVG plot to write (default: performance.svg next to -out)")
	fs.StringVar(&o.src, "src", ".", "the cgfreeze module to build")
	fs.StringVar(&o.bin, "bin", "", "a cgfreeze binary to measure instead of building one, static (CGO_ENABLED=0 go build; the size is then this binary's)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 20000 {
			return o, fmt.Errorf("-sizes: %q is not a process count from 1 to 20000", s)
		}
		o.sizes = append(o.sizes, n)
	}
	slices.Sort(o.sizes)
	o.sizes = slices.Compact(o.sizes)
	if o.reps < 1 || o.runs < 1 || o.warmup < 0 || o.hold < 0 {
		return o, errors.New("-reps and -runs must be positive, -warmup and -hold not negative")
	}
	if o.svg == "" && o.out != "" {
		o.svg = filepath.Join(filepath.Dir(o.out), "performance.svg")
	}
	for _, p := range []*string{&o.out, &o.svg, &o.src, &o.bin} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return o, err
			}
			*p = abs
		}
	}
	return o, nil
}

func main() {
	if dir := os.Getenv(spawnerEnv); dir != "" {
		os.Exit(spawnerMain(dir))
	}
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	if id := os.Getenv(innerEnv); id != "" {
		os.Exit(inner(o, id))
	}
	os.Exit(outer())
}

func dirExists(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// outer checks the machine, starts the inner process in a private mount
// namespace (where /sys/fs/cgroup can be cgroup2 for runc without touching
// the host's mount table), and afterwards restores what a killed inner
// process could have left: the cgroup2 options, the run's cgroups.
func outer() int {
	if os.Geteuid() != 0 {
		logf("run me as root: I create cgroups, runc containers and namespaces")
		return 1
	}
	for _, tool := range []string{"runc", "crun", "gcc", "nsenter", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			logf("%s is missing: apt-get install runc crun gcc libc6-dev util-linux mount", tool)
			return 1
		}
	}
	if _, err := os.Stat(busybox); err != nil {
		logf("%s is missing: apt-get install busybox-static", busybox)
		return 1
	}
	h, err := discoverHost()
	if err != nil {
		logf("%v", err)
		return 1
	}
	for _, stale := range h.bareDirs() {
		logf("warning: %s is left from an earlier run that was killed; remove it by hand (thaw, kill its processes, rmdir), or runc delete --force the containers in it", stale)
	}
	optsBefore, err := h.cg2Options()
	if err != nil {
		logf("%v", err)
		return 1
	}
	// runc enables every available controller in the cgroup2 root's
	// cgroup.subtree_control on its way down to a container's cgroup, and
	// nothing disables them after: the bench puts back what was there, as
	// the integration suite's TestMain does.
	subtreeBefore, err := cgtest.SubtreeControl(h.cg2)
	if err != nil {
		logf("%v", err)
		return 1
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	id := "cgfreeze-bench-" + hex.EncodeToString(rnd[:])

	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), innerEnv+"="+id)
	// Go makes the new mount namespace's mounts private (MS_REC|MS_PRIVATE
	// on /) before it executes the inner process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGTERM}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		logf("start the inner process: %v", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
wait:
	for {
		select {
		case s := <-sigs:
			// A terminal's Ctrl-C reaches the inner process too; a kill
			// of this one is passed on. The inner one cleans up.
			_ = cmd.Process.Signal(s)
		case werr = <-done:
			break wait
		}
	}
	code := 0
	if werr != nil {
		code = 1
		var ee *exec.ExitError
		if errors.As(werr, &ee) && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		}
	}

	// The safety net: the inner process restores all of this itself, unless
	// it was killed.
	if now, err := h.cg2Options(); err != nil {
		logf("cannot read the cgroup2 options: %v", err)
		code = 1
	} else if !sameOptions(now, optsBefore) {
		logf("the cgroup2 options are %q, not %q as before: restoring them", strings.Join(now, ","), strings.Join(optsBefore, ","))
		if err := h.setCg2Options(optsBefore); err != nil {
			logf("restoring the cgroup2 options failed: %v", err)
		}
		code = 1
	}
	if left := h.runDirs(id); len(left) > 0 {
		logf("the inner process left %v: removing", left)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := removeRunCgroups(ctx, h, id); err != nil {
			logf("%v", err)
		}
		code = 1
	}
	// The run's directory: the runtimes' state, the builds. The inner
	// process removes it, unless it was killed.
	if dir := filepath.Join(os.TempDir(), id); dirExists(dir) {
		logf("the inner process left %s: removing", dir)
		if err := os.RemoveAll(dir); err != nil {
			logf("%v", err)
		}
		code = 1
	}
	// After the run's cgroups are gone: a controller that a cgroup below
	// still uses cannot be disabled.
	if added, err := cgtest.RestoreSubtreeControl(h.cg2, subtreeBefore); err != nil {
		logf("%s/cgroup.subtree_control: %q were enabled during the run and cannot all be disabled: %v", h.cg2, added, err)
		code = 1
	} else if len(added) > 0 {
		logf("%s/cgroup.subtree_control: disabled %q, which runc enabled during the run", h.cg2, added)
	}
	return code
}
