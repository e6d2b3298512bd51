package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// More exit codes of docs/usage.md.
const (
	exitNotPrivileged = 5
	exitReadOnly      = 7
)

// joinScript moves itself into the cgroup whose cgroup.procs is $1, then
// runs the rest of its arguments.
const joinScript = `echo 0 > "$1" || { echo "cannot join $1" >&2; exit 97; }; shift; exec "$@"`

// insertBefore returns argv with prefix inserted before the cgfreeze
// binary, so that a wrapper (setpriv) runs it wherever the target's kind
// starts it.
func insertBefore(t *testing.T, argv []string, prefix ...string) []string {
	t.Helper()
	i := slices.Index(argv, binPath)
	if i < 0 {
		t.Fatalf("no %s in %q", binPath, argv)
	}
	return slices.Concat(argv[:i], prefix, argv[i:])
}

// TestRefuseRootCgroup: a process in the machine's root cgroup is refused
// (exit 4): freezing it would freeze the machine. cgfreeze runs in a cgroup
// of its own, so that the refusal is not the one for "holds cgfreeze
// itself".
func TestRefuseRootCgroup(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run("v"+strconv.Itoa(version), func(t *testing.T) {
			h := newHarness(t)
			if cg, err := procCgroup(os.Getpid(), version); err != nil || cg != "/" {
				t.Fatalf("this test expects to run in the root cgroup, not %q (%v)", cg, err)
			}
			sleeper := exec.Command(busybox, "sleep", "120")
			sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := sleeper.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = sleeper.Process.Kill()
				_ = sleeper.Wait()
			})
			agent := h.newCgroup(version)
			r := h.startCgfreeze("cgfreeze against the root cgroup", []string{busybox, "sh", "-c", joinScript, "agent", agent.file("cgroup.procs"),
				binPath, "--pid", strconv.Itoa(sleeper.Process.Pid), "--cgroup-version", strconv.Itoa(version), "-o", "json"})
			e := r.requireRefusal(exitUnsafeTarget)
			if !strings.Contains(e.Error, "root cgroup") {
				t.Errorf("error %q does not say the target is the root cgroup", e.Error)
			}
			h.checkLeftovers()
		})
	}
}

// TestRefuseNotPrivileged: cgfreeze without CAP_SYS_ADMIN (a container
// without --profile=sysadmin), and without any capability, exits 5 with a
// message that says how to run it, and changes nothing.
func TestRefuseNotPrivileged(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is missing: %v", err)
	}
	drops := map[string][]string{
		"no-sys-admin": {setpriv, "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--"},
		"no-caps":      {setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"},
	}
	for _, k := range []kind{kindV1, kindDirect, kindSubtree} {
		for name, prefix := range drops {
			t.Run(string(k)+"/"+name, func(t *testing.T) {
				h := newHarness(t)
				tg := h.newTarget(k, targetOpts{})
				before := h.snapshot(tg.cg)
				r := h.startCgfreeze("unprivileged cgfreeze", insertBefore(t, tg.argv(""), prefix...))
				e := r.requireRefusal(exitNotPrivileged)
				if !strings.Contains(e.Error, "--profile=sysadmin") {
					t.Errorf("error %q does not say how to run privileged", e.Error)
				}
				h.requireProgress("after the refusal", tg.w)
				h.requireSameCgroups("after the refusal", before, tg.w.pid)
				h.checkLeftovers()
			})
		}
	}
}

// readOnlyScript runs "$@" in a mount namespace of its own where $2 is a
// read-only bind mount of the hierarchy mounted at $1.
const readOnlyScript = `
exec @UNSHARE@ --mount --propagation private /bin/busybox sh -c '
	@MOUNT@ --bind "$1" "$2" && @MOUNT@ -o remount,bind,ro "$2" || exit 98
	shift 2; exec "$@"' readonly "$@"
`

// TestRefuseReadOnly: a read-only cgroup filesystem (what an unprivileged
// container sees at /sys/fs/cgroup), given with --cgroup-mount, exits 7 and
// changes nothing.
func TestRefuseReadOnly(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			src := cg2Mount
			if k == kindV1 {
				src = v1FreezerMount
			}
			dst := filepath.Join(h.dir, "ro-cgroup")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			argv := slices.Concat([]string{busybox, "sh", h.script("readonly.sh", readOnlyScript), src, dst},
				tg.argv("", "--cgroup-mount", dst))
			r := h.startCgfreeze("cgfreeze on a read-only cgroup mount", argv)
			e := r.requireRefusal(exitReadOnly)
			if !strings.Contains(e.Error, "read-only") {
				t.Errorf("error %q does not say read-only", e.Error)
			}
			h.requireProgress("after the refusal", tg.w)
			h.requireSameCgroups("after the refusal", before, tg.w.pid)
			h.checkLeftovers()
		})
	}
}

// TestRefuseThreaded: a process in a threaded cgroup is refused (exit 4):
// freezing that cgroup would stop some of a process's threads only.
func TestRefuseThreaded(t *testing.T) {
	h := newHarness(t)
	root := h.newCgroup(2)
	threaded := h.child(root, "t")
	if err := threaded.write("cgroup.type", "threaded"); err != nil {
		t.Fatal(err)
	}
	w := h.startWorkload(threaded, workloadOpts{})
	before := h.snapshot(root)
	r := h.startCgfreeze("cgfreeze against a threaded cgroup", []string{binPath, "--pid", strconv.Itoa(w.pid), "--cgroup-version", "2", "-o", "json"})
	e := r.requireRefusal(exitUnsafeTarget)
	if !strings.Contains(e.Error, `"threaded"`) {
		t.Errorf("error %q does not name the cgroup type", e.Error)
	}
	h.requireProgress("after the refusal", w)
	h.requireSameCgroups("after the refusal", before, w.pid)
	h.checkLeftovers()
}
