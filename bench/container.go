package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// container is a runc (or crun) container of n processes: busybox sh, PID
// 1 of its PID namespace, starts n-1 `busybox sleep` children and then
// becomes a `busybox sleep` itself.
type container struct {
	b       *bench
	runtime string // runc or crun
	name    string // the runtime's container ID
	n       int
	version int    // 1: v1 (runc's cgroupfs driver on this hybrid host); 2: cgroup2
	cgPath  string // /<run id>/c<n> (crun's: k<n>), in every hierarchy the runtime uses
	dir     string // its cgroup directory: in the v1 freezer hierarchy, or cgroup2
	pid     int    // PID 1 of the container, as the host sees it
	started bool
}

func (b *bench) newContainer(runtime string, version, n int) *container {
	ct := &container{b: b, runtime: runtime, n: n, version: version}
	ct.name = fmt.Sprintf("%s-v%d-%d", b.id, version, n)
	ct.cgPath = fmt.Sprintf("/%s/c%d", b.id, n)
	if runtime == "crun" {
		ct.name += "-crun"
		ct.cgPath = fmt.Sprintf("/%s/k%d", b.id, n)
	}
	if version == 1 {
		ct.dir = filepath.Join(b.h.freezer, ct.cgPath)
	} else {
		ct.dir = filepath.Join(b.cg2Root, ct.cgPath)
	}
	return ct
}

func (ct *container) String() string { return ct.name }

// ociSpec is the container's runtime configuration: the workload of n
// processes in PID, mount, IPC and UTS namespaces, and a cgroup namespace
// on v2 (as every runtime on a cgroup2 host makes one), which makes the
// container's cgroup the root of its cgroup namespace: the `kubectl debug
// --target` layout that needs the subtree strategy under nsdelegate.
// Without devices, the spec has no device rules: crun 1.8 on cgroup2 loads
// them as an eBPF program, which this machine refuses it.
func ociSpec(rootfs, cgPath string, n int, cgroupns, devices bool) *specs.Spec {
	script := fmt.Sprintf(`i=1; while [ $i -lt %d ]; do /bin/busybox sleep 1000000 & i=$((i+1)); done; exec /bin/busybox sleep 1000000`, n)
	ns := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}}
	if cgroupns {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	var res *specs.LinuxResources
	if devices {
		res = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	}
	return &specs.Spec{
		Version: "1.0.2",
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args:            []string{busybox, "sh", "-c", script},
			Env:             []string{"PATH=/bin"},
			Cwd:             "/",
			NoNewPrivileges: true,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Hostname: "bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=1024k"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgPath,
			Namespaces:  ns,
			Resources:   res,
		},
	}
}

// start runs the container and waits until all n processes are there.
func (ct *container) start(ctx context.Context) error {
	b := ct.b
	bundle := filepath.Join(b.dir, ct.name)
	if err := os.Mkdir(bundle, 0o755); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(ociSpec(b.rootfs, ct.cgPath, ct.n, ct.version == 2, ct.runtime == "runc" || ct.version == 1), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644); err != nil {
		return err
	}
	pidFile := filepath.Join(bundle, "pid")
	ct.started = true
	if _, err := ct.rt(ctx, "run", "--detach", "--bundle", bundle, "--pid-file", pidFile, ct.name); err != nil {
		return err
	}
	s, err := readFile(pidFile)
	if err != nil {
		return err
	}
	if ct.pid, err = strconv.Atoi(s); err != nil {
		return fmt.Errorf("%s: %q: %w", pidFile, s, err)
	}
	deadline := time.Now().Add(time.Duration(30+ct.n/50) * time.Second)
	for {
		pids, err := readPIDs(filepath.Join(ct.dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ct.pid))
		if len(pids) == ct.n && bytes.HasPrefix(cmdline, []byte(busybox+"\x00sleep\x00")) {
			break
		}
		if len(pids) > ct.n {
			return fmt.Errorf("%s: %d processes, want %d", ct, len(pids), ct.n)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d processes after %v", ct, len(pids), ct.n, time.Until(deadline))
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return ct.check()
}

// check is the safety check before anything freezes the container: PID 1
// is not the host's init, and its cgroup is the one this run made for it.
func (ct *container) check() error {
	b := ct.b
	if ct.pid <= 1 {
		return fmt.Errorf("%s: PID %d: refusing to freeze", ct, ct.pid)
	}
	if !strings.HasPrefix(ct.cgPath, "/"+b.id+"/") || !strings.Contains(ct.dir, "/"+b.id+"/") {
		return fmt.Errorf("%s: cgroup %s (%s) is not this run's: refusing to freeze", ct, ct.cgPath, ct.dir)
	}
	got, err := procCgroup(ct.pid, ct.version)
	if err != nil {
		return err
	}
	if got != ct.cgPath {
		return fmt.Errorf("%s: PID %d is in cgroup %s, not %s: refusing to freeze", ct, ct.pid, got, ct.cgPath)
	}
	return nil
}

// requireFrozen checks from the host that the container is frozen the way
// a method does it: v1 freezer.state; v2 direct: the container's cgroup;
// subtree: every process moved into the frozen child.
func (ct *container) requireFrozen(how string) error {
	switch {
	case ct.version == 1:
		st, err := readFile(filepath.Join(ct.dir, "freezer.state"))
		if err != nil {
			return err
		}
		if st != "FROZEN" {
			return fmt.Errorf("%s (%s): freezer.state reads %q, not FROZEN", ct, how, st)
		}
	case strings.HasPrefix(how, "subtree"):
		child := filepath.Join(ct.dir, childName(ct.dir, how))
		if err := requireEventsFrozen(child, true); err != nil {
			return fmt.Errorf("%s (%s): %w", ct, how, err)
		}
		if err := requireCount(ct.dir, 0); err != nil {
			return fmt.Errorf("%s (%s): %w", ct, how, err)
		}
		if err := requireCount(child, ct.n); err != nil {
			return fmt.Errorf("%s (%s): %w", ct, how, err)
		}
	default:
		if err := requireEventsFrozen(ct.dir, true); err != nil {
			return fmt.Errorf("%s (%s): %w", ct, how, err)
		}
	}
	return nil
}

func requireEventsFrozen(dir string, want bool) error {
	frozen, err := eventsFrozen(dir)
	if err != nil {
		return err
	}
	if frozen != want {
		return fmt.Errorf("%s says frozen %v", filepath.Join(dir, "cgroup.events"), frozen)
	}
	return nil
}

func requireCount(dir string, n int) error {
	pids, err := readPIDs(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return err
	}
	if len(pids) != n {
		return fmt.Errorf("%d processes in %s, want %d", len(pids), dir, n)
	}
	return nil
}

// childName is the child cgroup a subtree method froze the container in:
// the limit's, or the one cgfreeze made (freezer.ChildPrefix and random
// digits, new at every freeze).
func childName(dir, how string) string {
	if how == "subtree-limit" {
		return limitChild
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != limitChild && freezer.IsChildName(e.Name()) {
			return e.Name()
		}
	}
	return freezer.ChildPrefix + "(none)"
}

// requireThawed checks from the host that the container runs: thawed, all
// n processes back in its cgroup, no child cgroup left.
func (ct *container) requireThawed(how string) error {
	if ct.version == 1 {
		st, err := readFile(filepath.Join(ct.dir, "freezer.state"))
		if err != nil {
			return err
		}
		if st != "THAWED" {
			return fmt.Errorf("%s (after %s): freezer.state reads %q, not THAWED", ct, how, st)
		}
	} else {
		if err := requireEventsFrozen(ct.dir, false); err != nil {
			return fmt.Errorf("%s (after %s): %w", ct, how, err)
		}
		entries, err := os.ReadDir(ct.dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				return fmt.Errorf("%s (after %s): child cgroup %s left", ct, how, e.Name())
			}
		}
	}
	if err := requireCount(ct.dir, ct.n); err != nil {
		return fmt.Errorf("%s (after %s): %w", ct, how, err)
	}
	return nil
}

// destroy removes the container and its cgroups, whatever state it is in.
func (ct *container) destroy() error {
	if !ct.started {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Thaw first: frozen v1 tasks cannot die. Only this container's tree.
	errs := []error{thawTree(ct.dir)}
	if _, err := ct.rt(ctx, "delete", "--force", ct.name); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, killTree(ctx, ct.dir))
	dirs := []string{ct.dir}
	if ct.version == 1 {
		dirs = nil
		for _, h := range ct.b.h.hierarchies() {
			dirs = append(dirs, filepath.Join(h, ct.cgPath))
		}
	}
	for _, d := range dirs {
		errs = append(errs, removeTree(ctx, d))
	}
	// The bundle: the next run starts a container of the same name.
	errs = append(errs, os.RemoveAll(filepath.Join(ct.b.dir, ct.name)))
	ct.started = false
	return errors.Join(errs...)
}

// rt runs the container's runtime.
func (ct *container) rt(ctx context.Context, args ...string) (time.Duration, error) {
	if ct.runtime == "crun" {
		return ct.b.crun(ctx, ct.version, args...)
	}
	return ct.b.runc(ctx, args...)
}

// runc runs runc with the run's state directory and returns its wall time.
func (b *bench) runc(ctx context.Context, args ...string) (time.Duration, error) {
	return timedRun(ctx, b.dir, append([]string{b.runcPath, "--root", b.runcRoot}, args...))
}
