package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// bench is the inner process's state.
type bench struct {
	o          options
	id         string
	h          *host
	dir        string // the run's temporary directory
	runcRoot   string
	runcPath   string
	crunRoot   string // crun's state directory (crun --root)
	spawner    *spawner
	goTool     string
	floorC     string // the floors' binaries
	floorGo    string
	run        int // the whole run (-runs) under way, from 0
	rootfs     string
	bin        string            // the cgfreeze binary measured
	tools      map[string]string // nsenter, unshare, mount: util-linux's, by absolute path
	cg2Root    string            // where cgroup2 is reachable now
	agentProcs string            // v2: the agent cgroup's cgroup.procs
	res        *results
}

// method is one way to freeze and thaw a container.
type method struct {
	row, name string // row: v1, direct, subtree; name: cgfreeze, runc, crun, limit, the floors
	rows      []string
	run       func(ctx context.Context, ct *container) (sample, error)
}

func inner(o options, id string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// Signals stay caught until the end, so that a second Ctrl-C cannot cut
	// the cleanup short.
	defer stop()
	h, err := discoverHost()
	if err != nil {
		logf("%v", err)
		return 1
	}
	b := &bench{o: o, id: id, h: h, cg2Root: h.cg2, res: newResults(o)}
	b.dir = filepath.Join(os.TempDir(), id)
	if err := os.Mkdir(b.dir, 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(b.dir) }()
	err = b.runAll(ctx)
	cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if cerr := removeRunCgroups(cctx, h, id); cerr != nil {
		logf("cleanup: %v", cerr)
		err = errors.Join(err, cerr)
	}
	if left := h.runDirs(id); len(left) > 0 {
		logf("cleanup: left %v", left)
		err = errors.Join(err, fmt.Errorf("cgroups left: %v", left))
	}
	if err != nil {
		logf("failed: %v", err)
		return 1
	}
	return 0
}

func (b *bench) runAll(ctx context.Context) (err error) {
	b.tools = map[string]string{}
	for _, t := range []string{"nsenter", "unshare", "mount", "umount", "runc", "crun"} {
		p, err := exec.LookPath(t)
		if err == nil {
			p, err = filepath.Abs(p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		b.tools[t] = p
	}
	b.runcPath = b.tools["runc"]
	b.runcRoot = filepath.Join(b.dir, "runc")
	b.crunRoot = filepath.Join(b.dir, "crun")
	b.res.machine = describeMachine()
	if err := b.prepare(ctx); err != nil {
		return err
	}
	if err := b.buildFloors(ctx); err != nil {
		return err
	}
	if b.h.freezer != "" {
		sp, err := b.startSpawner()
		if err != nil {
			return err
		}
		b.spawner = sp
		defer func() {
			if serr := sp.stop(); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
	}
	b.res.start = time.Now()
	cpu0 := readCPUTimes()

	// Every run is whole: baselines, then every size on v1, then on v2,
	// each container started anew. Rounds are compared only within a run
	// (interleaved); the report takes the median of the runs' medians.
	for b.run = 0; b.run < b.o.runs; b.run++ {
		if b.o.runs > 1 {
			logf("run %d of %d", b.run+1, b.o.runs)
		}
		if err := b.baselines(ctx); err != nil {
			return err
		}
		if b.h.freezer != "" {
			for _, n := range b.o.sizes {
				if err := b.scenario(ctx, 1, n); err != nil {
					return err
				}
			}
		} else if b.run == 0 {
			logf("no v1 freezer hierarchy: the v1 scenario is skipped")
		}
		if err := b.v2(ctx); err != nil {
			return err
		}
	}

	b.res.end = time.Now()
	b.res.busy = readCPUTimes().busySince(cpu0)
	b.res.loadEnd = loadavg()
	return b.report()
}

// prepare builds cgfreeze (or takes -bin) and the containers' root
// filesystem: busybox alone.
func (b *bench) prepare(ctx context.Context) error {
	b.goTool = "/usr/local/go/bin/go"
	if p, err := exec.LookPath("go"); err == nil {
		b.goTool = p
	}
	if b.o.bin != "" {
		b.bin = b.o.bin
		fi, err := os.Stat(b.bin)
		if err != nil {
			return err
		}
		b.res.binSize = fi.Size()
	} else {
		build := func(out string, extra ...string) (int64, error) {
			args := append([]string{"build"}, extra...)
			args = append(args, "-o", out, ".")
			cmd := exec.CommandContext(ctx, b.goTool, args...)
			cmd.Dir = b.o.src
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if msg, err := cmd.CombinedOutput(); err != nil {
				return 0, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, msg)
			}
			fi, err := os.Stat(out)
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		}
		b.bin = filepath.Join(b.dir, "cgfreeze")
		var err error
		if b.res.binSize, err = build(b.bin); err != nil {
			return err
		}
		if b.res.binSizeStripped, err = build(filepath.Join(b.dir, "cgfreeze-stripped"), "-trimpath", "-ldflags=-s -w"); err != nil {
			return err
		}
		b.res.commit = gitDescribe(b.o.src)
	}
	static, err := isStatic(b.bin)
	if err != nil {
		return err
	}
	if !static && b.o.bin != "" {
		// The bench's own build is CGO_ENABLED=0; should it not be
		// static, the report says so (the binary's goal).
		return notStatic(b.bin)
	}
	b.res.static = static
	b.rootfs = filepath.Join(b.dir, "rootfs")
	for _, d := range []string{"bin", "proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(b.rootfs, d), 0o755); err != nil {
			return err
		}
	}
	return copyFile(busybox, filepath.Join(b.rootfs, "bin", "busybox"))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// notStatic refuses a dynamically linked cgfreeze (a -bin built with cgo,
// which a plain `go build` makes on a machine with a C compiler: zerolog
// and pflag import net): cgfreeze ships static, and the dynamic loader and
// libc's mappings cost every process about 0.7 ms more from exec to exit
// here, which would be measured as cgfreeze's.
func notStatic(file string) error {
	return fmt.Errorf("-bin %s is dynamically linked: cgfreeze ships as a static binary; build the one to measure with CGO_ENABLED=0 go build", file)
}

// isStatic tells whether an ELF file needs no dynamic loader.
func isStatic(file string) (bool, error) {
	f, err := elf.Open(file)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return false, nil
		}
	}
	return true, nil
}

func gitDescribe(dir string) string {
	out, err := exec.Command("git", "-C", dir, "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// baselines times a whole process that does nothing much: what starting
// cgfreeze or runc costs at all.
func (b *bench) baselines(ctx context.Context) error {
	for _, argv := range [][]string{{b.bin, "version"}, {b.runcPath, "--version"}, {b.tools["crun"], "--version"}} {
		var ds []time.Duration
		for i := 0; i < b.o.reps+b.o.warmup; i++ {
			d, err := startTime(ctx, argv...)
			if err != nil {
				return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
			}
			if i >= b.o.warmup {
				ds = append(ds, d)
			}
		}
		b.res.baseline = append(b.res.baseline, baseline{filepath.Base(argv[0]) + " " + argv[1], b.run, median(ds)})
	}
	return nil
}

// v2 runs the cgroup2 scenarios: in this (private) mount namespace,
// cgroup2 is bound over /sys/fs/cgroup, so that runc uses it (on this
// hybrid host it would use v1) and cgfreeze detects v2; and nsdelegate is on
// for the hierarchy, for the whole machine (the kubectl-debug layout needs
// it), until the end of the scenarios, also on failure.
func (b *bench) v2(ctx context.Context) (err error) {
	const sysCg = "/sys/fs/cgroup"
	if b.h.cg2 != sysCg {
		if err := unix.Mount(b.h.cg2, sysCg, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s (in the bench's own mount namespace): %w", b.h.cg2, sysCg, err)
		}
		b.cg2Root = sysCg
		defer func() {
			if uerr := unix.Unmount(sysCg, unix.MNT_DETACH); uerr != nil {
				err = errors.Join(err, fmt.Errorf("unmount %s: %w", sysCg, uerr))
			}
			b.cg2Root = b.h.cg2
		}()
	}
	before, err := b.h.cg2Options()
	if err != nil {
		return err
	}
	b.res.cg2Options = strings.Join(before, ",")
	if !slices.Contains(before, "nsdelegate") {
		if err := b.h.setCg2Options(append(slices.Clone(before), "nsdelegate")); err != nil {
			return fmt.Errorf("switch nsdelegate on: %w", err)
		}
		defer func() {
			if rerr := b.h.setCg2Options(before); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore the cgroup2 options %q: %w", strings.Join(before, ","), rerr))
			} else {
				logf("cgroup2 options restored: %s", strings.Join(before, ","))
			}
		}()
		logf("nsdelegate is on for the cgroup2 hierarchy until the v2 scenarios end")
	}
	agent := filepath.Join(b.cg2Root, b.id, "agent")
	if err := os.MkdirAll(agent, 0o755); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, killTree(cctx, agent), removeTree(cctx, filepath.Join(b.cg2Root, b.id)))
	}()
	b.agentProcs = filepath.Join(agent, "cgroup.procs")
	for _, n := range b.o.sizes {
		if err := b.scenario(ctx, 2, n); err != nil {
			return err
		}
	}
	return nil
}

// scenario starts a runc and a crun container of n processes and measures
// every method on them, in turns (the order rotates every round), then, in
// the first run, the hold. crun pauses its own container; every other
// method freezes the runc one.
func (b *bench) scenario(ctx context.Context, version, n int) (err error) {
	ct := b.newContainer("runc", version, n)
	kc := b.newContainer("crun", version, n)
	defer func() {
		for _, c := range []*container{kc, ct} {
			if derr := c.destroy(); derr != nil {
				err = errors.Join(err, fmt.Errorf("remove %s: %w", c, derr))
			}
		}
	}()
	for _, c := range []*container{ct, kc} {
		t := time.Now()
		if err := c.start(ctx); err != nil {
			return err
		}
		logf("%s: %d processes started in %v", c, n, time.Since(t).Round(time.Millisecond))
	}
	crun := func(ctx context.Context, _ *container) (sample, error) { return b.crunPauseResume(ctx, kc) }
	floor := func(name string) func(context.Context, *container) (sample, error) {
		return func(ctx context.Context, ct *container) (sample, error) { return b.floor(ctx, ct, name) }
	}
	var methods []method
	if version == 1 {
		methods = []method{
			{row: "v1", name: "cgfreeze", run: func(ctx context.Context, ct *container) (sample, error) { return b.cgfreeze(ctx, ct, false, nil) }},
			{row: "v1", name: "runc", run: b.runcPauseResume},
			{row: "v1", name: "crun", run: crun},
			{row: "v1", name: "limit", run: b.limitV1},
		}
	} else {
		methods = []method{
			{row: "direct", name: "cgfreeze", run: func(ctx context.Context, ct *container) (sample, error) { return b.cgfreeze(ctx, ct, false, nil) }},
			{row: "subtree", name: "cgfreeze", run: func(ctx context.Context, ct *container) (sample, error) { return b.cgfreeze(ctx, ct, true, nil) }},
			// The same with --pid 1, which skips the check that PID 1
			// is the namespace's only workload (it lists /proc).
			{row: "subtree-pid1", name: "cgfreeze", run: func(ctx context.Context, ct *container) (sample, error) {
				return b.cgfreeze(ctx, ct, true, nil, "--pid", "1")
			}},
			// runc pause and crun pause freeze the container's cgroup
			// from the host on either layout: the peers of every row.
			{row: "direct", name: "runc", rows: []string{"direct", "subtree", "subtree-pid1"}, run: b.runcPauseResume},
			{row: "direct", name: "crun", rows: []string{"direct", "subtree", "subtree-pid1"}, run: crun},
			{row: "direct", name: "limit", run: b.limitDirect},
			{row: "subtree", name: "limit", rows: []string{"subtree", "subtree-pid1"}, run: b.limitSubtree},
		}
	}
	for _, f := range floors {
		methods = append(methods, method{row: methods[0].row, name: f.name, run: floor(f.name)})
	}
	for round := -b.o.warmup; round < b.o.reps; round++ {
		for i := range methods {
			m := methods[(i+round+b.o.warmup)%len(methods)]
			s, err := m.run(ctx, ct)
			if err != nil {
				return fmt.Errorf("%s %s, %d processes: %w", m.row, m.name, n, err)
			}
			s.run = b.run
			if round >= 0 {
				rows := m.rows
				if rows == nil {
					rows = []string{m.row}
				}
				for _, r := range rows {
					b.res.add(r, n, m.name, s)
				}
			}
			// Let what a method started settle (exits, RCU) before
			// the next one.
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return err
			}
		}
	}
	for _, m := range methods {
		if m.name != "cgfreeze" {
			continue
		}
		med := func(method string, thaw bool) string {
			s := b.res.get(m.row, n, method).ofRun(b.run)
			if thaw {
				return ms(median(s.thaw()))
			}
			return ms(median(s.freeze()))
		}
		own := b.res.get(m.row, n, "cgfreeze").ofRun(b.run)
		logf("%s, %d processes: cgfreeze freeze %s thaw %s (its own elapsed_ms %s / %s); crun pause %s resume %s; runc pause %s resume %s; go floor with watchdog %s; limit %s / %s", m.row, n,
			med("cgfreeze", false), med("cgfreeze", true), ms(median(own.freezeEv())), ms(median(own.thawEv())),
			med("crun", false), med("crun", true), med("runc", false), med("runc", true),
			med("go-floor-wd", false), med("limit", false), med("limit", true))
	}
	if n == b.o.holdSize && b.o.hold > 0 && b.run == 0 {
		for _, m := range methods {
			if m.name != "cgfreeze" || m.row == "subtree-pid1" {
				continue
			}
			logf("%s: holding a freeze of %d processes for %v", m.row, n, b.o.hold)
			st, err := b.hold(ctx, ct, m.row == "subtree")
			if err != nil {
				return fmt.Errorf("%s hold: %w", m.row, err)
			}
			b.res.hold[m.row] = st
		}
	}
	return nil
}

// machine is what the report says of the machine.
type machine struct {
	cpu, kernel, os, mem, goVersion, runc, crun, gcc, busybox string
	cores                                                     int
	loadStart                                                 string
}

func describeMachine() machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version(), loadStart: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.os = strings.Trim(v, `"`)
			}
		}
	}
	if kb, err := meminfoKB("MemTotal"); err == nil {
		m.mem = fmt.Sprintf("%.1f GiB", float64(kb)/1024/1024)
	}
	if out, err := exec.Command("runc", "--version").Output(); err == nil {
		m.runc = strings.Join(strings.Fields(strings.SplitN(string(out), "\n", 2)[0]), " ")
	}
	if out, err := exec.Command("crun", "--version").Output(); err == nil {
		m.crun = strings.Join(strings.Fields(strings.SplitN(string(out), "\n", 2)[0]), " ")
	}
	if out, err := exec.Command(busybox).CombinedOutput(); err == nil || len(out) > 0 {
		m.busybox = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return m
}

func meminfoKB(key string) (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			var n int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", key)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuTimes is the first line of /proc/stat: the machine's CPU time in
// ticks, all cores.
type cpuTimes struct{ busy, total int64 }

func readCPUTimes() cpuTimes {
	var c cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	for i, s := range f[1:] {
		if i >= 8 {
			break // guest and guest_nice are counted in user and nice already
		}
		var n int64
		_, _ = fmt.Sscanf(s, "%d", &n)
		c.total += n
		if i != 3 && i != 4 { // idle, iowait
			c.busy += n
		}
	}
	return c
}

// busySince is the share of the machine's CPU time spent busy since c0.
func (c cpuTimes) busySince(c0 cpuTimes) float64 {
	if c.total <= c0.total {
		return 0
	}
	return float64(c.busy-c0.busy) / float64(c.total-c0.total)
}
