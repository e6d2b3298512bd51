package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kind is how a target is laid out and how cgfreeze is run against it.
type kind string

const (
	// kindV1: the target is a v1 freezer cgroup; cgfreeze --pid P on this
	// hybrid host detects v1 by itself.
	kindV1 kind = "v1"
	// kindDirect: the target is a cgroup2 cgroup; cgfreeze --pid P
	// --cgroup-version 2 in the host's namespaces.
	kindDirect kind = "v2-direct"
	// kindPureV2: like kindDirect, but cgfreeze runs in a mount namespace
	// where /sys/fs/cgroup is cgroup2 (a pure-v2 host) and detects v2.
	kindPureV2 kind = "v2-pure"
	// kindSubtree: kubectl debug --target: the target is a "container"
	// (PID 1 of its own PID namespace, root of its own cgroup namespace at
	// .../target, nsdelegate on); cgfreeze runs without --pid in an
	// "ephemeral container" (.../agent, its own cgroup and mount
	// namespaces, the target's PID namespace, cgroup2 at /sys/fs/cgroup).
	kindSubtree kind = "v2-subtree"
)

type target struct {
	h     *harness
	kind  kind
	root  *cgroup   // the test's top-level cgroup
	cg    *cgroup   // the target cgroup
	agent *cgroup   // kindSubtree: the agent's cgroup
	subs  []*cgroup // child cgroups of cg with a worker each
	w     *workload
}

type targetOpts struct {
	// noPdeathsig: see workloadOpts.
	noPdeathsig bool
	mode        string // the workload's mode: "count" (default) or "fork"
	nested      bool   // workers in child cgroups c1, c2 and c1/g1 of the target
	// subs, instead of nested: the child cgroups (paths below the target,
	// parents first) with a worker each. One named "cgfreeze" is the
	// workload's own, not a leftover of cgfreeze's.
	subs []string
	// nsdelegate switches nsdelegate on for every kind (kindSubtree always
	// has it), as on a systemd host.
	nsdelegate bool
	// netns runs the workload in a network namespace of the test's (the
	// pod's network namespace, which the agent of kindSubtree joins).
	netns *netns
}

func (h *harness) newTarget(k kind, o targetOpts) *target {
	h.t.Helper()
	tg := &target{h: h, kind: k}
	if o.nsdelegate {
		enableNsdelegate(h.t, h)
	}
	switch k {
	case kindV1:
		tg.root = h.newCgroup(1)
		tg.cg = tg.root
	case kindDirect, kindPureV2:
		tg.root = h.newCgroup(2)
		tg.cg = tg.root
	case kindSubtree:
		enableNsdelegate(h.t, h)
		tg.root = h.newCgroup(2)
		tg.cg = h.child(tg.root, "target")
		tg.agent = h.child(tg.root, "agent")
	default:
		h.t.Fatalf("unknown kind %q", k)
	}
	if o.nested {
		c1 := h.child(tg.cg, "c1")
		tg.subs = []*cgroup{c1, h.child(tg.cg, "c2"), h.child(c1, "g1")}
	}
	for _, rel := range o.subs {
		parent := tg.cg
		if d := filepath.Dir(rel); d != "." {
			parent = tg.cg.sub(d)
		}
		sub := h.child(parent, filepath.Base(rel))
		if filepath.Base(rel) == "cgfreeze" {
			h.foreign[sub.dir] = true
		}
		tg.subs = append(tg.subs, sub)
	}
	tg.w = h.startWorkload(tg.cg, workloadOpts{mode: o.mode, subs: tg.subs, pidns: k == kindSubtree, netns: o.netns, noPdeathsig: o.noPdeathsig})
	if k == kindSubtree {
		tg.probeAgent()
	}
	return tg
}

// agentScript runs "$@" (cgfreeze) the way kubelet starts an ephemeral
// container: in the agent cgroup ($1), in the PID namespace of the target
// ($2, a host PID) and its network namespace (a pod's containers share
// one), in a cgroup namespace of its own (rooted at the agent
// cgroup) and a mount namespace of its own with its own /proc and cgroup2
// at /sys/fs/cgroup. nsenter forks (a PID namespace applies to children),
// so the cgroup process is a child of the started one.
const agentScript = `
echo 0 > "$1" || { echo "agent: cannot join $1" >&2; exit 97; }
tpid=$2; shift 2
exec @NSENTER@ --target "$tpid" --pid --net -- @UNSHARE@ --cgroup --mount --propagation private /bin/busybox sh -c '
	@MOUNT@ -t proc proc /proc || exit 98
	@MOUNT@ -t cgroup2 none /sys/fs/cgroup || exit 98
	exec "$@"' agent "$@"
`

// pureV2Script runs "$@" in a mount namespace of its own where
// /sys/fs/cgroup is cgroup2, mounted with the options $1: those in force,
// since a mount from the initial cgroup namespace applies its options to
// the whole hierarchy.
const pureV2Script = `
opts=$1; shift
exec @UNSHARE@ --mount --propagation private /bin/busybox sh -c '
	@MOUNT@ -t cgroup2 -o "$0" none /sys/fs/cgroup || exit 98
	exec "$@"' "$opts" "$@"
`

func (h *harness) script(name, text string) string {
	p := filepath.Join(h.dir, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	text = strings.NewReplacer("@NSENTER@", nsenterPath, "@UNSHARE@", unsharePath, "@MOUNT@", mountPath).Replace(text)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// wrap returns the command line that runs the cgfreeze command line cmd the
// way the target's kind needs.
func (tg *target) wrap(cmd []string) []string {
	h := tg.h
	switch tg.kind {
	case kindPureV2:
		opts, err := cg2SuperOptions()
		if err != nil {
			h.t.Fatal(err)
		}
		return append([]string{busybox, "sh", h.script("purev2.sh", pureV2Script), strings.Join(opts, ",")}, cmd...)
	case kindSubtree:
		return append([]string{busybox, "sh", h.script("agent.sh", agentScript), tg.agent.file("cgroup.procs"), strconv.Itoa(tg.w.pid)}, cmd...)
	}
	return cmd
}

// argv is the command line of `cgfreeze [sub] <target flags> -o json
// [extra]` for the target.
func (tg *target) argv(sub string, extra ...string) []string {
	cmd := []string{binPath}
	if sub != "" {
		cmd = append(cmd, sub)
	}
	switch tg.kind {
	case kindV1, kindPureV2:
		cmd = append(cmd, "--pid", strconv.Itoa(tg.w.pid))
	case kindDirect:
		cmd = append(cmd, "--pid", strconv.Itoa(tg.w.pid), "--cgroup-version", "2")
	case kindSubtree:
		// No --pid: PID 1 of the shared PID namespace is the target.
	}
	cmd = append(cmd, "-o", "json")
	cmd = append(cmd, extra...)
	return tg.wrap(cmd)
}

func (tg *target) start(sub string, extra ...string) *run {
	tg.h.t.Helper()
	desc := "cgfreeze " + sub
	if sub == "" {
		desc = "cgfreeze"
	}
	return tg.h.startCgfreeze(desc+" ("+string(tg.kind)+")", tg.argv(sub, extra...))
}

// probeAgent checks the ephemeral-container emulation itself: from the
// agent, PID 1 is the target, in cgroup /../target, and /sys/fs/cgroup is
// cgroup2.
func (tg *target) probeAgent() {
	h := tg.h
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	argv := tg.wrap([]string{busybox, "sh", "-c", "cat /proc/1/cgroup; echo; cat /proc/self/cgroup; echo; grep ' /sys/fs/cgroup ' /proc/self/mountinfo | tail -n 1"})
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("the agent emulation does not run: %v: %s", err, out)
	}
	s := string(out)
	for _, want := range []string{"\n0::/../target\n", "\n0::/\n", " - cgroup2 "} {
		if !strings.Contains("\n"+s, want) {
			h.t.Fatalf("the agent emulation is not what kubectl debug makes: no %q in:\n%s", strings.TrimSpace(want), s)
		}
	}
}

// expected returns the fields every event about the target must carry.
func (tg *target) expected() event {
	switch tg.kind {
	case kindV1:
		return event{PID: tg.w.pid, Cgroup: tg.cg.rel, Version: 1, Strategy: "freezer"}
	case kindSubtree:
		return event{PID: 1, Cgroup: "/", Version: 2, Strategy: "subtree"}
	}
	return event{PID: tg.w.pid, Cgroup: tg.cg.rel, Version: 2, Strategy: "direct"}
}

func (tg *target) workers() int { return 1 + len(tg.subs) }

// requireBase checks pid, cgroup, version and strategy of an event.
func (tg *target) requireBase(e event) {
	tg.h.t.Helper()
	want := tg.expected()
	if e.PID != want.PID || e.Cgroup != want.Cgroup || e.Version != want.Version || e.Strategy != want.Strategy {
		tg.h.t.Errorf("event %s: want pid %d, cgroup %q, version %d, strategy %q", e.raw, want.PID, want.Cgroup, want.Version, want.Strategy)
	}
}

// requireFrozen checks from the host that the kernel has the target, and
// everything below it, frozen the way the target's kind does it.
func (tg *target) requireFrozen(what string) {
	h := tg.h
	h.t.Helper()
	all, err := tg.cg.walk()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
	switch tg.kind {
	case kindV1:
		for _, cg := range all {
			if st, err := cg.read("freezer.state"); err != nil || st != "FROZEN" {
				h.t.Errorf("%s: %s reads %q (%v), not FROZEN", what, cg.file("freezer.state"), st, err)
			}
		}
		if v, err := tg.cg.read("freezer.self_freezing"); err != nil || v != "1" {
			h.t.Errorf("%s: %s reads %q (%v), not 1", what, tg.cg.file("freezer.self_freezing"), v, err)
		}
	case kindDirect, kindPureV2:
		if v, err := tg.cg.read("cgroup.freeze"); err != nil || v != "1" {
			h.t.Errorf("%s: %s reads %q (%v), not 1", what, tg.cg.file("cgroup.freeze"), v, err)
		}
		for _, cg := range all {
			if v, err := cg.settledFrozen(h.t); err != nil || v != "1" {
				h.t.Errorf("%s: %s says frozen %q (%v), not 1", what, cg.file("cgroup.events"), v, err)
			}
		}
		for _, cg := range all {
			if isOwnChildName(filepath.Base(cg.dir)) {
				h.t.Errorf("%s: the direct strategy created %s", what, cg)
			}
		}
	case kindSubtree:
		child := tg.cg.ownChild()
		if child == nil {
			h.t.Fatalf("%s: no cgfreeze cgroup under the target (cgroups: %v)", what, all)
		}
		if v, err := tg.cg.read("cgroup.freeze"); err != nil || v != "0" {
			h.t.Errorf("%s: the target's own %s reads %q (%v): the subtree strategy must not (cannot) write it", what, tg.cg.file("cgroup.freeze"), v, err)
		}
		if pids, err := tg.cg.procs(); err != nil || len(pids) != 0 {
			h.t.Errorf("%s: processes left in the target cgroup itself: %v (%v)", what, pids, err)
		}
		if pids, err := child.procs(); err != nil || !slices.Contains(pids, tg.w.pid) {
			h.t.Errorf("%s: %s holds %v (%v), not the target's PID 1 (%d)", what, child.file("cgroup.procs"), pids, err, tg.w.pid)
		}
		for _, cg := range all[1:] {
			if v, err := cg.settledFrozen(h.t); err != nil || v != "1" {
				h.t.Errorf("%s: %s says frozen %q (%v), not 1", what, cg.file("cgroup.events"), v, err)
			}
		}
	}
}

// cycleOpts says how one freeze/thaw cycle goes.
type cycleOpts struct {
	sig         syscall.Signal // ends the hold; 0: --duration ends it
	duration    string         // --duration, with sig 0
	still       time.Duration  // how long the workload must stay still (default stillFor)
	signalTwice bool           // send sig again at once: the thaw must not be cut short
	whileFrozen func(r *run)   // more checks while frozen
}

// cycle freezes the target with cgfreeze, checks that it is frozen and
// still, ends the hold, and checks that everything runs again where it
// was. It returns the thawed event.
func (tg *target) cycle(what string, o cycleOpts) event {
	h := tg.h
	h.t.Helper()
	if o.still == 0 {
		o.still = stillFor
	}
	before := h.snapshot(tg.cg)
	h.requireProgress(what+": before the freeze", tg.w)

	var extra []string
	if o.sig == 0 {
		extra = append(extra, "--duration", o.duration)
	}
	r := tg.start("", extra...)
	frozen := r.waitEvent("frozen")
	tg.requireBase(frozen)
	if frozen.Processes == nil || *frozen.Processes < tg.workers() {
		h.t.Errorf("%s: frozen event %s: want processes >= %d (the workers)", what, frozen.raw, tg.workers())
	}
	tg.requireFrozen(what + ": after the frozen event")
	h.requireStill(what+": while frozen", tg.cg, o.still, tg.w)
	if o.whileFrozen != nil {
		o.whileFrozen(r)
	}
	if !r.running() {
		h.t.Fatalf("%s: cgfreeze exited while it should hold: %s", what, r.describe())
	}

	if o.sig != 0 {
		r.signal(o.sig)
		if o.signalTwice {
			r.signal(o.sig)
		}
	}
	thawed := r.waitEvent("thawed")
	tg.requireBase(thawed)
	if o.sig != 0 {
		if thawed.Reason != "signal" || thawed.Signal != o.sig.String() {
			h.t.Errorf("%s: thawed event %s: want reason \"signal\", signal %q", what, thawed.raw, o.sig.String())
		}
	} else if thawed.Reason != "duration" || thawed.Signal != "" {
		h.t.Errorf("%s: thawed event %s: want reason \"duration\" and no signal", what, thawed.raw)
	}
	if thawed.HeldMS == nil || *thawed.HeldMS <= 0 {
		h.t.Errorf("%s: thawed event %s: no held_ms", what, thawed.raw)
	}
	if thawed.Processes == nil {
		h.t.Errorf("%s: thawed event %s: no processes", what, thawed.raw)
	}
	if code := r.wait(); code != 0 {
		h.t.Errorf("%s: exit code %d after the thaw, want 0: %s", what, code, r.describe())
	}
	h.requireProgress(what+": after the thaw", tg.w)
	h.requireSameCgroups(what+": after the thaw", before, tg.w.pid)
	h.checkLeftovers()
	return thawed
}

// holderPid is the PID of the holder of a running freeze as the mark
// records it: in cgfreeze's own PID namespace.
func (tg *target) holderPid(r *run) int {
	if tg.kind == kindSubtree {
		return nsPid(r.holderProcess())
	}
	return r.holderProcess()
}

// requireStatus runs `cgfreeze status` and checks its one event.
func (tg *target) requireStatus(what, state, frozenBy string, holder int) {
	h := tg.h
	h.t.Helper()
	r := tg.start("status")
	e := r.waitEvent("status")
	if code := r.wait(); code != 0 {
		h.t.Errorf("%s: status exit code %d: %s", what, code, r.describe())
	}
	tg.requireBase(e)
	ns := "own"
	if tg.kind == kindSubtree {
		ns = "target"
	}
	if e.State != state || e.FrozenBy != frozenBy || e.Holder != holder || e.Namespace != ns || e.Processes == nil {
		h.t.Errorf("%s: status event %s: want state %q, frozen_by %q, holder %d, namespace %q, processes", what, e.raw, state, frozenBy, holder, ns)
	}
}

// flickerLimit bounds how long a cgroup that said "frozen 1" may read
// "frozen 0" before it says 1 again.
const flickerLimit = 200 * time.Millisecond

// settledFrozen reads the "frozen" key of cgroup.events, and reads it
// again for up to flickerLimit while it says 0: on Linux 6.18 a cgroup
// frozen right after a thaw was seen to drop back to "frozen 0" for a
// moment after it said 1 (docs/design.md, "Waiting"). A flicker is logged;
// a cgroup that stays unfrozen fails the caller's check.
func (c *cgroup) settledFrozen(t testing.TB) (string, error) {
	start := time.Now()
	for {
		v, err := c.frozen()
		if err == nil && v == "1" {
			if waited := time.Since(start); waited > time.Millisecond {
				t.Logf("%s said frozen 0 for %v after the freeze was confirmed", c.file("cgroup.events"), waited.Round(time.Millisecond))
			}
			return v, nil
		}
		if time.Since(start) > flickerLimit {
			return v, err
		}
		time.Sleep(time.Millisecond)
	}
}
