package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runcDeadline bounds one runc command (create, kill, exec, pause...).
const runcDeadline = 20 * time.Second

// runtime is runc with a state directory of the test's own (runc --root),
// whose containers' cgroups all lie under one parent named
// cgfreeze-test-*: the cleanup deletes every container of that state
// directory and removes the parent in every hierarchy, so that only the
// test's cgroups are ever touched.
//
// Version 1 runs runc as it is on this hybrid host (cgroupfs driver: a
// cgroup in every v1 hierarchy). Version 2 runs every runc command in a
// mount namespace of its own where cgroup2 is mounted at /sys/fs/cgroup
// (runc then drives cgroup v2, as on a pure-v2 node), with nsdelegate on,
// as systemd mounts it.
type ociRuntime struct {
	h        *harness
	version  int
	stateDir string
	parent   *cgroup // in the freezer hierarchy (v1) or cgroup2 (v2)
	// subtreeBefore is cgroup2's root cgroup.subtree_control before: runc
	// enables every available controller on the way down to a
	// container's cgroup, the root included; the cleanup disables what it
	// added.
	subtreeBefore []string
	rootfs        string // the busybox root file system of the workloads
	cleaned       bool
}

func (h *harness) newRuntime(version int) *ociRuntime {
	h.t.Helper()
	if version == 2 {
		enableNsdelegate(h.t, h)
	}
	rt := &ociRuntime{h: h, version: version, stateDir: filepath.Join(h.dir, "runc")}
	b, err := os.ReadFile(filepath.Join(cg2Mount, "cgroup.subtree_control"))
	if err != nil {
		h.t.Fatal(err)
	}
	rt.subtreeBefore = strings.Fields(string(b))
	rt.parent = h.newCgroup(version)
	// Registered after the harness's (and nsdelegate's) cleanup, so it
	// runs before them: containers go before their cgroups and before
	// the hierarchy's options are restored.
	h.t.Cleanup(rt.cleanup)
	return rt
}

// argv is the command line of `runc --root STATE args...`.
func (rt *ociRuntime) argv(args ...string) []string {
	cmd := append([]string{runcPath, "--root", rt.stateDir}, args...)
	if rt.version == 1 {
		return cmd
	}
	opts, err := cg2SuperOptions()
	if err != nil {
		rt.h.t.Fatal(err)
	}
	return append([]string{busybox, "sh", rt.h.script("purev2.sh", pureV2Script), strings.Join(opts, ",")}, cmd...)
}

// runc runs one runc command and returns its combined output.
func (rt *ociRuntime) runc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runcDeadline)
	defer cancel()
	argv := rt.argv(args...)
	// Output to a file, not a pipe: `runc exec -d` hands its stdio to the
	// process it starts, which would hold a pipe open for good.
	f, err := os.CreateTemp(rt.h.dir, "runc-*.out")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	_ = f.Close()
	out := readAll(f.Name())
	if err != nil {
		return out, fmt.Errorf("runc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return out, nil
}

func (rt *ociRuntime) must(args ...string) string {
	rt.h.t.Helper()
	out, err := rt.runc(args...)
	if err != nil {
		rt.h.t.Fatal(err)
	}
	return out
}

// status returns runc's state of container id: "running", "paused", ...
func (rt *ociRuntime) state(id string) specs.State {
	rt.h.t.Helper()
	var st specs.State
	if err := json.Unmarshal([]byte(rt.must("state", id)), &st); err != nil {
		rt.h.t.Fatalf("runc state %s: %v", id, err)
	}
	return st
}

func newContainerID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) // 64 hex digits, as containerd's and CRI-O's IDs
}

// cgroup is the cgroup of container id, as the test sees it.
func (rt *ociRuntime) cgroup(id string) *cgroup { return rt.parent.sub(id) }

// bundle writes spec to a bundle directory of its own and returns it.
func (rt *ociRuntime) bundle(id string, spec *specs.Spec) string {
	rt.h.t.Helper()
	dir := filepath.Join(rt.h.dir, "bundle-"+id[:12])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		rt.h.t.Fatal(err)
	}
	spec.Linux.CgroupsPath = rt.parent.rel + "/" + id
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		rt.h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		rt.h.t.Fatal(err)
	}
	return dir
}

// busyboxRootfs returns a root file system with busybox-static alone, for
// the workload containers.
func (rt *ociRuntime) busyboxRootfs() string {
	rt.h.t.Helper()
	if rt.rootfs != "" {
		return rt.rootfs
	}
	root := filepath.Join(rt.h.dir, "busybox-rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		rt.h.t.Fatal(err)
	}
	src, err := os.Open(busybox)
	if err != nil {
		rt.h.t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	if err := writeFile(filepath.Join(root, "bin", "busybox"), src, 0o755); err != nil {
		rt.h.t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "cat", "mv", "usleep", "true"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			rt.h.t.Fatal(err)
		}
	}
	rt.rootfs = root
	return root
}

// capabilityNames are the capabilities by bit number.
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// allCapabilities is what a privileged container gets: every capability
// the runtime has itself, as containerd does (this machine's bounding set
// lacks CAP_SYS_RESOURCE, which runc cannot give then).
func allCapabilities() []string {
	var bnd uint64
	for _, line := range strings.Split(readAll("/proc/self/status"), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	var out []string
	for bit, name := range capabilityNames {
		if bnd&(1<<bit) != 0 {
			out = append(out, name)
		}
	}
	return out
}

// defaultCapabilities are containerd's defaults for an unprivileged
// container.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// baseMounts are the mounts a CRI runtime gives every container; a
// privileged one gets /sys and /sys/fs/cgroup writable.
func baseMounts(privileged bool) []specs.Mount {
	ro := "ro"
	if privileged {
		ro = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", ro}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", ro}},
	}
}

// containerOpts describes a workload container.
type containerOpts struct {
	name string // for messages and the counter directory
	// pause makes an infrastructure container: it sleeps, counts nothing.
	pause bool
	// mode is the workload's mode (workloadScript): "count" (default) or
	// "fork".
	mode string
	// pod, when set, is the pause container whose PID, network and IPC
	// namespaces this one joins (a pod with shareProcessNamespace: true).
	pod *container
}

// container is a workload container the test started with `runc run` in
// the foreground (runc stays its parent, as a shim does).
type container struct {
	id  string
	pid int // its init's PID, here
	cg  *cgroup
	w   *workload // the runc process and the counters
}

// namespaces returns the namespaces of a workload container: everything
// new, or the pod's PID, network and IPC namespaces; a cgroup namespace of
// its own on v2 only, as containerd does.
func (rt *ociRuntime) namespaces(pod *container) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}}
	for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace} {
		n := specs.LinuxNamespace{Type: typ}
		if pod != nil {
			n.Path = nsPath(pod.pid, typ)
		}
		ns = append(ns, n)
	}
	if rt.version == 2 {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

func nsPath(pid int, typ specs.LinuxNamespaceType) string {
	name := string(typ)
	switch typ {
	case specs.NetworkNamespace:
		name = "net"
	case specs.MountNamespace:
		name = "mnt"
	}
	return fmt.Sprintf("/proc/%d/ns/%s", pid, name)
}

// startContainer starts a busybox container with `runc run` and, unless
// it is a pause container, waits until its workload counts into a
// directory of the host that is bind-mounted at /out.
func (rt *ociRuntime) startContainer(o containerOpts) *container {
	h := rt.h
	h.t.Helper()
	c := &container{id: newContainerID()}
	c.cg = rt.cgroup(c.id)
	w := &workload{name: o.name, cg: c.cg, exited: make(chan struct{})}
	w.dir = filepath.Join(h.dir, o.name)
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "w.sh"), []byte(workloadScript), 0o644); err != nil {
		h.t.Fatal(err)
	}
	mode := o.mode
	if mode == "" {
		mode = "count"
	}
	args := []string{"/bin/busybox", "sh", "/out/w.sh", "main", "/out", mode}
	if o.pause {
		args = []string{"/bin/busybox", "sleep", "1000000"}
	} else {
		w.counters = []string{filepath.Join(w.dir, "main")}
	}
	spec := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			Args: args, Env: []string{"PATH=/bin"}, Cwd: "/",
			Capabilities:    &specs.LinuxCapabilities{Bounding: defaultCapabilities, Effective: defaultCapabilities, Permitted: defaultCapabilities},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: rt.busyboxRootfs(), Readonly: true},
		Hostname: o.name,
		Mounts: append(baseMounts(false), specs.Mount{
			Destination: "/out", Type: "bind", Source: w.dir, Options: []string{"rbind", "rw"},
		}),
		Linux: &specs.Linux{
			Namespaces:    rt.namespaces(o.pod),
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	bundle := rt.bundle(c.id, spec)
	w.stderr = filepath.Join(w.dir, "runc.stderr")
	errf, err := os.Create(w.stderr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = errf.Close() }()
	argv := rt.argv("run", "--bundle", bundle, c.id)
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Stdout, w.cmd.Stderr = errf, errf
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := w.cmd.Start(); err != nil {
		h.t.Fatalf("start %s: %v", o.name, err)
	}
	h.workloads = append(h.workloads, w)
	go func() {
		_ = w.cmd.Wait()
		close(w.exited)
	}()
	c.w = w
	deadline := time.Now().Add(startDeadline)
	for {
		out, err := rt.runc("state", c.id)
		var st specs.State
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Status == specs.StateRunning && st.Pid > 0 {
			c.pid = st.Pid
			vals, err := w.values()
			if err == nil && (o.pause || vals[0] >= 2) {
				break
			}
		}
		if !w.alive() {
			h.t.Fatalf("%s: runc run exited (%v): %s", o.name, w.cmd.ProcessState, w.stderrText())
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s does not run (and count) after %v: %v; stderr: %s", o.name, startDeadline, err, w.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.pid = c.pid
	if got, err := procCgroup(c.pid, rt.version); err != nil || got != c.cg.rel {
		h.t.Fatalf("%s: init %d is in cgroup %q (%v), not %q", o.name, c.pid, got, err, c.cg.rel)
	}
	return c
}

// execCounter starts `runc exec -d` of one more counting process in c
// (as kubectl exec does) and adds its counter to c's workload.
func (rt *ociRuntime) execCounter(c *container, name string) {
	h := rt.h
	h.t.Helper()
	rt.must("exec", "-d", c.id, "/bin/busybox", "sh", "/out/w.sh", "count", "/out/"+name)
	file := filepath.Join(c.w.dir, name)
	deadline := time.Now().Add(startDeadline)
	for {
		b, err := os.ReadFile(file)
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("runc exec'd counter %s does not count after %v", file, startDeadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.w.counters = append(c.w.counters, file)
}

// agentSpec is the configuration of an agent container as kubelet makes an
// ephemeral container with `kubectl debug --image=<the image>
// --target=<target> --profile=sysadmin`: the image's root and entrypoint
// (with args appended, as --arguments-only -- args does), privileged (all
// capabilities, no seccomp, no masked or read-only paths, /sys and
// /sys/fs/cgroup writable, every device), in the target's PID, network and
// IPC namespaces, with mount, UTS and cgroup namespaces and a cgroup of its
// own. A nil target gives it namespaces of its own.
func (rt *ociRuntime) agentSpec(target *container, args []string) *specs.Spec {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}, {Type: specs.CgroupNamespace}}
	for _, typ := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace} {
		n := specs.LinuxNamespace{Type: typ}
		if target != nil {
			n.Path = nsPath(target.pid, typ)
		}
		ns = append(ns, n)
	}
	env := imageConfig.Config.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cwd := imageConfig.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	return &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			Args: slices.Concat(imageConfig.Config.Entrypoint, imageConfig.Config.Cmd, args), Env: env, Cwd: cwd,
			Capabilities: &specs.LinuxCapabilities{Bounding: allCapabilities(), Effective: allCapabilities(), Permitted: allCapabilities()},
		},
		Root:     &specs.Root{Path: imageRootfs},
		Hostname: "cgfreeze-agent",
		Mounts:   baseMounts(true),
		Linux: &specs.Linux{
			Namespaces: ns,
			Resources:  &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}},
		},
	}
}

// startAgent runs the image as an ephemeral container targeting target,
// with args after the entrypoint (none: the README's kubectl debug).
func (rt *ociRuntime) startAgent(target *container, args ...string) (*run, string) {
	rt.h.t.Helper()
	id := newContainerID()
	bundle := rt.bundle(id, rt.agentSpec(target, args))
	desc := fmt.Sprintf("agent container %s (cgfreeze %s, v%d)", id[:12], strings.Join(args, " "), rt.version)
	return rt.h.startCgfreeze(desc, rt.argv("run", "--bundle", bundle, id)), id
}

// runOnce runs the image with args in a container of its own and returns
// its stdout.
func (rt *ociRuntime) runOnce(what string, spec *specs.Spec) string {
	h := rt.h
	h.t.Helper()
	id := newContainerID()
	bundle := rt.bundle(id, spec)
	ctx, cancel := context.WithTimeout(context.Background(), runcDeadline)
	defer cancel()
	argv := rt.argv("run", "--bundle", bundle, id)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("%s: runc run: %v; stderr: %s", what, err, stderr.String())
	}
	return string(out)
}

// cgroupMounts lists where each hierarchy's root is mounted here: the v1
// ones and cgroup2.
func cgroupMounts() ([]string, error) {
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, me := range mounts {
		if (me.fsType == "cgroup" || me.fsType == "cgroup2") && me.root == "/" && !slices.Contains(out, me.mountPoint) {
			out = append(out, me.mountPoint)
		}
	}
	return out, nil
}

// cleanup deletes every container of the runtime's state directory, then
// the parent cgroup in every hierarchy, and checks that nothing of them is
// left; it gives cgroup2's root the controllers it had.
func (rt *ociRuntime) cleanup() {
	if rt.cleaned {
		return
	}
	rt.cleaned = true
	t := rt.h.t
	// Thaw first: frozen v1 tasks cannot die.
	if err := thawTree(rt.parent); err != nil {
		t.Errorf("cleanup: thaw %s: %v", rt.parent, err)
	}
	out, err := rt.runc("list", "-q")
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, id := range strings.Fields(out) {
		if _, err := rt.runc("delete", "--force", id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if out, err := rt.runc("list", "-q"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("leftovers: runc containers still there after delete --force: %q (%v)", out, err)
	}
	deadline := time.Now().Add(cleanupDeadline)
	for _, w := range rt.h.workloads {
		select {
		case <-w.exited:
		case <-time.After(time.Until(deadline)):
			t.Errorf("cleanup: runc run of %s (PID %d) does not exit after its container's delete", w.name, w.cmd.Process.Pid)
		}
	}
	mounts, err := cgroupMounts()
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	name := filepath.Base(rt.parent.dir)
	for _, mnt := range mounts {
		cg := &cgroup{version: 1, dir: filepath.Join(mnt, name), rel: "/" + name}
		if mnt == cg2Mount {
			cg.version = 2
		}
		if err := killTree(cg); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := removeTree(cg); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if _, err := os.Stat(cg.dir); err == nil {
			t.Errorf("leftovers: %s is still there", cg.dir)
		}
	}
	b, err := os.ReadFile(filepath.Join(cg2Mount, "cgroup.subtree_control"))
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, ctrl := range strings.Fields(string(b)) {
		if slices.Contains(rt.subtreeBefore, ctrl) {
			continue
		}
		if err := os.WriteFile(filepath.Join(cg2Mount, "cgroup.subtree_control"), []byte("-"+ctrl), 0); err != nil {
			t.Errorf("cleanup: disable %s in %s/cgroup.subtree_control (runc enabled it): %v", ctrl, cg2Mount, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(cg2Mount, "cgroup.subtree_control")); err != nil || !sameOptions(strings.Fields(string(b)), rt.subtreeBefore) {
		t.Errorf("leftovers: %s/cgroup.subtree_control reads %q (%v), not %q as before", cg2Mount, b, err, rt.subtreeBefore)
	}
}

// readAll returns a file's content, "" when it cannot be read.
func readAll(file string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	b, _ := io.ReadAll(f)
	return string(b)
}
