package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/cgtest"
)

// workloadScript is run by busybox sh. `main DIR MODE [NAME=PROCS]...`
// starts one counting worker per NAME=PROCS (each moves itself into the
// cgroup whose cgroup.procs is PROCS first, and counts into DIR/NAME), then
// runs MODE itself, counting into DIR/main. Every counter is a file that is
// rewritten (atomically, by rename) with the next number every ~10 ms.
const workloadScript = `
count() {
	i=0
	while :; do
		i=$((i+1))
		echo $i > "$1.tmp" && /bin/busybox mv -f "$1.tmp" "$1"
		/bin/busybox usleep 10000
	done
}
# fork counts too, and spawns short-lived children all the time: three per
# round, each waited for, so that it never grows into a fork bomb.
fork() {
	i=0
	while :; do
		i=$((i+1))
		/bin/busybox usleep 3000 & a=$!
		( /bin/busybox true ) & b=$!
		/bin/busybox sh -c '/bin/busybox usleep 1000' & c=$!
		echo $i > "$1.tmp" && /bin/busybox mv -f "$1.tmp" "$1"
		wait $a $b $c
	done
}
case "$1" in
main)
	dir=$2; mode=$3; shift 3
	for sub in "$@"; do
		name=${sub%%=*}; procs=${sub#*=}
		/bin/busybox sh -c 'echo 0 > "$1" || exit 97; exec /bin/busybox sh "$2" count "$3"' sub "$procs" "$0" "$dir/$name" &
	done
	$mode "$dir/main"
	;;
count|fork)
	"$1" "$2"
	;;
*)
	echo "workload: unknown command $1" >&2
	exit 2
	;;
esac
`

type workload struct {
	name     string
	cmd      *exec.Cmd
	pid      int     // the main process's PID in this (the host's) PID namespace
	cg       *cgroup // where the main process runs
	dir      string
	counters []string // the counter files: DIR/main, DIR/<sub>...
	stderr   string
	exited   chan struct{}
}

type workloadOpts struct {
	// noPdeathsig: for a test that ends OS threads of its own process;
	// the cleanup kills the workload by its cgroup all the same.
	noPdeathsig bool
	mode        string    // "count" (default) or "fork"
	subs        []*cgroup // a counting worker in each
	pidns       bool      // a "container": PID 1 of its own PID namespace and root of its own cgroup namespace
	netns       *netns    // run in this network namespace (nil: this one)
}

// startWorkload starts a workload whose main process runs in cg and waits
// until every worker counts.
func (h *harness) startWorkload(cg *cgroup, o workloadOpts) *workload {
	h.t.Helper()
	if o.mode == "" {
		o.mode = "count"
	}
	n := len(h.workloads)
	w := &workload{name: fmt.Sprintf("workload%d", n), cg: cg, exited: make(chan struct{})}
	w.dir = filepath.Join(h.dir, w.name)
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	script := filepath.Join(w.dir, "w.sh")
	if err := os.WriteFile(script, []byte(workloadScript), 0o644); err != nil {
		h.t.Fatal(err)
	}
	args := []string{busybox, "sh", script, "main", w.dir, o.mode}
	w.counters = []string{filepath.Join(w.dir, "main")}
	for i, s := range o.subs {
		name := fmt.Sprintf("sub%d", i)
		args = append(args, name+"="+s.file("cgroup.procs"))
		w.counters = append(w.counters, filepath.Join(w.dir, name))
	}
	// The first process moves itself into cg before it becomes the
	// workload. A "container" does it as PID 1 of its new PID namespace
	// (so that the unshare parent stays outside the target, as a
	// runtime's shim does) and then enters a new cgroup namespace, rooted
	// at cg.
	enter := `echo 0 > "$1" || { echo "cannot join the cgroup" >&2; exit 97; }; shift; exec "$@"`
	var argv []string
	if o.pidns {
		enter = `echo 0 > "$1" || { echo "cannot join the cgroup" >&2; exit 97; }; shift; exec ` + unsharePath + ` --cgroup "$@"`
		argv = []string{unsharePath, "--pid", "--fork", "--kill-child", "--mount-proc", busybox, "sh", "-c", enter, "enter", cg.file("cgroup.procs")}
	} else {
		argv = []string{busybox, "sh", "-c", enter, "enter", cg.file("cgroup.procs")}
	}
	argv = append(argv, args...)
	if o.netns != nil {
		// nsenter --net alone does not fork: the workload's first
		// process stays the one started here.
		argv = append([]string{nsenterPath, "--net=" + o.netns.path, "--"}, argv...)
	}
	w.stderr = filepath.Join(w.dir, "stderr")
	errf, err := os.Create(w.stderr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = errf.Close() }()
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Stderr = errf
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if o.noPdeathsig {
		// Pdeathsig fires when the OS thread that forked the workload
		// ends, and a test that uses the freezer package in-process ends
		// threads (a Target's locked thread dies with it).
		w.cmd.SysProcAttr.Pdeathsig = 0
	}
	if err := w.cmd.Start(); err != nil {
		h.t.Fatalf("start workload: %v", err)
	}
	h.workloads = append(h.workloads, w)
	go func() {
		_ = w.cmd.Wait()
		close(w.exited)
	}()

	w.pid = w.cmd.Process.Pid
	if o.pidns {
		w.pid = h.waitChild(w)
	}
	deadline := time.Now().Add(startDeadline)
	for {
		vals, err := w.values()
		if err == nil && vals[0] >= 2 && slices.Min(vals) >= 1 {
			break
		}
		select {
		case <-w.exited:
			h.t.Fatalf("%s exited (%v) before it counted; stderr: %s", w.name, w.cmd.ProcessState, w.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s does not count after %v (%v); stderr: %s", w.name, startDeadline, err, w.stderrText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := procCgroup(w.pid, cg.version); err != nil || got != cg.rel {
		h.t.Fatalf("%s: main process %d is in cgroup %q (%v), not %q", w.name, w.pid, got, err, cg.rel)
	}
	if o.pidns {
		if nspid := nsPid(w.pid); nspid != 1 {
			h.t.Fatalf("%s: process %d is PID %d of its PID namespace, not 1", w.name, w.pid, nspid)
		}
	}
	return w
}

// waitChild returns the PID of the only child of the workload's first
// process (unshare --fork's child: PID 1 of the new namespace).
func (h *harness) waitChild(w *workload) int {
	h.t.Helper()
	parent := w.cmd.Process.Pid
	deadline := time.Now().Add(startDeadline)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
		if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
			pid, err := strconv.Atoi(f[0])
			if err == nil {
				return pid
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("%s: unshare (PID %d) has no child after %v; stderr: %s", w.name, parent, startDeadline, w.stderrText())
	return 0
}

func (w *workload) stderrText() string {
	b, _ := os.ReadFile(w.stderr)
	return fmt.Sprintf("%q", tail(string(b), 2000))
}

func (w *workload) values() ([]int, error) {
	vals := make([]int, len(w.counters))
	for i, f := range w.counters {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", f, b, err)
		}
		vals[i] = v
	}
	return vals, nil
}

func (w *workload) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// requireProgress waits until every counter of the workloads has moved.
func (h *harness) requireProgress(what string, ws ...*workload) {
	h.t.Helper()
	start := make([][]int, len(ws))
	for i, w := range ws {
		v, err := w.values()
		if err != nil {
			h.t.Fatalf("%s: read %s's counters: %v", what, w.name, err)
		}
		start[i] = v
	}
	deadline := time.Now().Add(progressDeadline)
	for {
		var stuck []string
		for i, w := range ws {
			v, err := w.values()
			if err != nil {
				h.t.Fatalf("%s: read %s's counters: %v", what, w.name, err)
			}
			for j := range v {
				if v[j] <= start[i][j] {
					stuck = append(stuck, fmt.Sprintf("%s stays at %d", w.counters[j], v[j]))
				}
			}
		}
		if len(stuck) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var dead []string
			for _, w := range ws {
				if !w.alive() {
					dead = append(dead, fmt.Sprintf("%s exited (%v), stderr %s", w.name, w.cmd.ProcessState, w.stderrText()))
				}
			}
			h.t.Fatalf("%s: the workload does not run: after %v %s; %s\ncgroups:%s", what, progressDeadline, strings.Join(stuck, ", "), strings.Join(dead, "; "), h.describeCgroups())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireStill checks that no counter changes and no process appears in
// or leaves the cgroup tree over d.
func (h *harness) requireStill(what string, root *cgroup, d time.Duration, ws ...*workload) {
	h.t.Helper()
	read := func() ([][]int, map[string][]int) {
		vals := make([][]int, len(ws))
		for i, w := range ws {
			v, err := w.values()
			if err != nil {
				h.t.Fatalf("%s: read %s's counters: %v", what, w.name, err)
			}
			vals[i] = v
		}
		procs, err := root.treeProcs()
		if err != nil {
			h.t.Fatalf("%s: list the processes of %s: %v", what, root, err)
		}
		return vals, procs
	}
	v0, p0 := read()
	time.Sleep(d)
	v1, p1 := read()
	for i, w := range ws {
		if !slices.Equal(v0[i], v1[i]) {
			h.t.Errorf("%s: %s counted while frozen: %v, %v later %v\ncgroups:%s", what, w.name, v0[i], d, v1[i], h.describeCgroups())
		}
	}
	if !mapsEqual(p0, p1) {
		h.t.Errorf("%s: the processes of %s changed while frozen:\n before: %v\n %v later: %v", what, root, p0, d, p1)
	}
}

func mapsEqual(a, b map[string][]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// procCgroup returns the path of pid's cgroup in the v1 freezer hierarchy
// (version 1) or in cgroup2 (version 2), as this namespace sees it.
func procCgroup(pid, version int) (string, error) { return cgtest.ProcCgroup(pid, version) }

// startTime returns field 22 of /proc/PID/stat, to tell a process from a
// later one with the same PID.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return f[19], nil
}

// nsPid returns pid's PID in its own (innermost) PID namespace.
func nsPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return -1
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return -1
}

// isCgfreeze tells whether pid runs this suite's cgfreeze binary, or the
// image's (unpacked for the agent containers).
func isCgfreeze(pid int) bool {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && (os.SameFile(fi, binInfo) || imageBinInfo != nil && os.SameFile(fi, imageBinInfo))
}

// cgfreezeProcesses lists the processes that run this suite's binary.
func cgfreezeProcesses() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && isCgfreeze(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// descendants returns the processes below pid.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", p, task.Name()))
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// procSnapshot is what a process's cgroups were before a freeze.
type procSnapshot map[int]struct{ start, cgroups string }

// snapshot records the cgroups (every line of /proc/PID/cgroup) of every
// process in root's tree.
func (h *harness) snapshot(root *cgroup) procSnapshot {
	h.t.Helper()
	procs, err := root.treeProcs()
	if err != nil {
		h.t.Fatalf("snapshot: %v", err)
	}
	snap := procSnapshot{}
	for _, pids := range procs {
		for _, pid := range pids {
			st, err1 := startTime(pid)
			cg, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
			if err1 != nil || err2 != nil {
				continue // exited meanwhile
			}
			snap[pid] = struct{ start, cgroups string }{st, string(cg)}
		}
	}
	return snap
}

// requireSameCgroups checks that every process of the snapshot that still
// runs is in exactly the cgroups it was in, and that the main processes
// (must) still run.
func (h *harness) requireSameCgroups(what string, snap procSnapshot, must ...int) {
	h.t.Helper()
	for _, pid := range must {
		if _, ok := snap[pid]; !ok {
			h.t.Errorf("%s: process %d was not in the target's cgroups before the freeze", what, pid)
		}
	}
	var moved []string
	for pid, was := range snap {
		st, err1 := startTime(pid)
		now, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err1 != nil || err2 != nil || st != was.start {
			if slices.Contains(must, pid) {
				h.t.Errorf("%s: process %d is gone after the thaw", what, pid)
			}
			continue
		}
		if string(now) != was.cgroups {
			moved = append(moved, fmt.Sprintf("process %d: %s", pid, lineDiff(was.cgroups, string(now))))
		}
	}
	if len(moved) > 0 {
		sort.Strings(moved)
		h.t.Errorf("%s: processes are not back in their cgroups:\n%s", what, strings.Join(moved, "\n"))
	}
}

// lineDiff shows the lines of /proc/PID/cgroup that changed.
func lineDiff(was, now string) string {
	a, b := strings.Split(strings.TrimSpace(was), "\n"), strings.Split(strings.TrimSpace(now), "\n")
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "was "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "now "+l)
		}
	}
	return strings.Join(out, ", ")
}

// describeCgroups shows every cgroup of the test: its processes and its
// freezer state, for failure messages.
func (h *harness) describeCgroups() string {
	var b strings.Builder
	for _, root := range h.roots {
		all, err := root.walk()
		if err != nil {
			fmt.Fprintf(&b, "\n  %s: %v", root, err)
			continue
		}
		for _, cg := range all {
			procs, _ := cg.read("cgroup.procs")
			var state string
			if cg.version == 1 {
				state, _ = cg.read("freezer.state")
			} else {
				freeze, _ := cg.read("cgroup.freeze")
				frozen, _ := cg.frozen()
				state = "cgroup.freeze=" + freeze + " frozen=" + frozen
			}
			fmt.Fprintf(&b, "\n  v%d %s: %s, processes [%s]", cg.version, cg.rel, state, strings.Join(strings.Fields(procs), " "))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
