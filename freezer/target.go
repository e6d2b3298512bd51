//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// Strategy is how a target is frozen.
type Strategy string

// The strategies.
const (
	// StrategyFreezer writes the v1 freezer controller's freezer.state.
	StrategyFreezer Strategy = "freezer"
	// StrategyDirect writes the target's own v2 cgroup.freeze.
	StrategyDirect Strategy = "direct"
	// StrategySubtree moves the target's processes into a frozen child
	// cgroup, for a target whose cgroup.freeze may not be written (the root
	// of a cgroup namespace on a hierarchy mounted with nsdelegate).
	StrategySubtree Strategy = "subtree"
)

// Options says which process's cgroup to freeze and where to look.
type Options struct {
	// PID is a process of the target; its cgroup is the target.
	PID int
	// PIDDefaulted tells that PID is the default (1) rather than the
	// caller's choice. Resolve then refuses it, with a list of what it
	// sees, when the PID namespace also shows other containers' processes
	// (a pod that shares its PID namespace, where PID 1 is the pause
	// container), except in the host's PID namespace.
	PIDDefaulted bool
	// ContainerID, when set, selects the target by container ID instead of
	// PID: the container whose cgroup path (in /proc/<pid>/cgroup of the
	// processes visible in ProcRoot) carries this ID or an ID that starts
	// with it (see procs.Containers). A "runtime://" prefix is dropped.
	ContainerID string
	// ProcRoot is the proc filesystem that shows PID, "/proc" when empty.
	ProcRoot string
	// SysCgroup is where detection looks at the mounted cgroup filesystem,
	// "/sys/fs/cgroup" when empty. Nothing is written through it; a cgroup2
	// target resolved from the initial cgroup namespace is reached through
	// a private copy of the mount there (or at its "unified"), when it is
	// the writable root of cgroup2.
	SysCgroup string
	// Version forces cgroup v1 or v2; 0 detects.
	Version int
	// Recovering tells that the target is resolved to be thawed (Recover)
	// or inspected, not frozen: the workload check of a default PID 1
	// (PIDDefaulted) does not refuse a target that carries a cgfreeze
	// mark, since a cgfreeze chose and froze it, and undoing that must not
	// depend on what else the PID namespace shows.
	Recovering bool
	// CgroupMount, when set, is where the target's hierarchy is mounted
	// already (the v1 freezer hierarchy's root, or cgroup2's), showing the
	// root of the caller's cgroup namespace. It is used instead of a
	// private mount, for hosts where cgfreeze may not mount.
	CgroupMount string
}

// Target is a resolved target: a private mount of its cgroup hierarchy, on a
// thread in the cgroup namespace the target was resolved in. Close it.
type Target struct {
	// PID is the process the target was resolved from.
	PID int
	// ContainerID is the container ID that the target's cgroup path carries
	// as cgfreeze first read it, "" when it carries none.
	ContainerID string
	// Version is the cgroup version, 1 or 2.
	Version int
	// Path is the target cgroup's path relative to the root of the cgroup
	// namespace it was resolved in ("/" for that namespace's root).
	Path string
	// Strategy is how Freeze freezes it.
	Strategy Strategy
	// EnteredNamespace tells whether the target was resolved in its own
	// cgroup namespace (it was not visible from the caller's).
	EnteredNamespace bool

	procRoot string
	fs       *mount.FS
	// spec and mopts name the hierarchy and how it was reached, for the
	// holder that shares it (Target.Share).
	spec  mount.Spec
	mopts mount.Options
}

// Resolve finds the target cgroup of opts.PID, mounts its hierarchy
// privately and decides how to freeze it. It changes nothing.
func Resolve(opts Options) (*Target, error) {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.SysCgroup == "" {
		opts.SysCgroup = "/sys/fs/cgroup"
	}
	if opts.ContainerID == "" && opts.PID <= 0 {
		return nil, fmt.Errorf("%w: invalid PID %d", ErrTargetNotFound, opts.PID)
	}
	// The check of a default PID 1 runs after the mount, where it is
	// cheap (see treePIDs); the listing of the processes it needs runs
	// meanwhile.
	checkPID1 := opts.PIDDefaulted && opts.ContainerID == "" && !hostPIDNamespace(opts.ProcRoot)
	var listing chan listResult
	if checkPID1 {
		listing = make(chan listResult, 1)
		go func() {
			pids, err := procs.ListPIDs(opts.ProcRoot)
			listing <- listResult{pids, err}
		}()
	}
	sel := opts
	sel.PIDDefaulted = false
	pid, err := selectPID(sel)
	if err != nil {
		return nil, err
	}
	opts.PID = pid
	cg, err := procs.ReadCgroups(opts.ProcRoot, opts.PID)
	if err != nil {
		return nil, targetErr(opts, err)
	}
	version := opts.Version
	if version == 0 {
		version, err = DetectVersion(opts.SysCgroup, cg)
		if err != nil {
			return nil, err
		}
	}
	spec, cgPath, err := mountSpec(version, cg)
	if err != nil {
		return nil, err
	}

	self := os.Getpid()
	ownNS, err := procs.Namespace(opts.ProcRoot, self, "cgroup")
	if err != nil {
		return nil, fmt.Errorf("read cgroup namespace of cgfreeze itself (is %s this PID namespace's proc?): %w", opts.ProcRoot, err)
	}
	targetNS, err := procs.Namespace(opts.ProcRoot, opts.PID, "cgroup")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			// The kernel lets only a process with CAP_SYS_PTRACE (or the
			// target's own capabilities) see its namespaces.
			return nil, fmt.Errorf("%w: cannot read the namespaces of process %d: %w", ErrNotPrivileged, opts.PID, err)
		}
		return nil, targetErr(opts, err)
	}
	// A target outside the caller's cgroup namespace ("/../x") is reached
	// from inside its own namespace, where it is the root.
	enter := procs.Outside(cgPath) && targetNS != ownNS
	viewNS := ownNS
	mopts := mount.Options{Existing: opts.CgroupMount}
	if enter && opts.CgroupMount != "" {
		return nil, fmt.Errorf("%w: the target's cgroup %s is outside cgfreeze's cgroup namespace, so %s cannot show it; drop --cgroup-mount", ErrUnsafeTarget, cgPath, opts.CgroupMount)
	}
	if enter {
		viewNS = targetNS
		mopts.CgroupNamespace = filepath.Join(opts.ProcRoot, strconv.Itoa(opts.PID), "ns", "cgroup")
	}
	var fs *mount.FS
	if version == 2 && viewNS == procs.InitCgroupNamespace && opts.CgroupMount == "" {
		// Mounting from the initial cgroup namespace applies the mount's
		// options to the hierarchy, for the whole machine. A copy of a
		// mount of the whole hierarchy applies none, and is quicker (a new
		// mount from the initial cgroup namespace waits for an RCU grace
		// period, some 10 ms): first the usual places (the copy checks
		// that it is cgroup2's writable root), then those that cgfreeze's
		// mountinfo lists, and a new mount only with the options in force,
		// which mountinfo tells; nothing is mounted when they cannot be
		// known.
		mopts.Clones, mopts.CloneOnly = []string{opts.SysCgroup, filepath.Join(opts.SysCgroup, "unified")}, true
		fs, err = mount.Open(spec, mopts)
		if errors.Is(err, mount.ErrNoClone) {
			h := mount.HierarchyFromFile("cgroup2", filepath.Join(opts.ProcRoot, strconv.Itoa(self), "mountinfo"))
			spec.Options, mopts.Clones, mopts.CloneOnly = h.Options, h.Roots, false
			if !h.Found {
				var found bool
				spec.Options, found = mount.SuperOptionsFromFiles("cgroup2", filepath.Join(opts.ProcRoot, "1", "mountinfo"))
				if !found {
					return nil, fmt.Errorf("cgroup2 is mounted neither in cgfreeze's mount namespace nor in the target's, so its options (nsdelegate, memory_recursiveprot) are unknown and a mount would reset them for the whole machine; mount cgroup2 and pass it with --cgroup-mount")
				}
			}
			fs, err = mount.Open(spec, mopts)
		}
	} else {
		fs, err = mount.Open(spec, mopts)
	}
	if errors.Is(err, mount.ErrNotHierarchyRoot) {
		return nil, fmt.Errorf("%w: --cgroup-mount %s: %w; pass a mount of the whole hierarchy made in cgfreeze's cgroup namespace, or leave --cgroup-mount out", ErrUnsafeTarget, opts.CgroupMount, err)
	}
	if err != nil {
		return nil, classify(err)
	}
	t := &Target{PID: opts.PID, Version: version, EnteredNamespace: enter, procRoot: opts.ProcRoot, fs: fs, spec: spec, mopts: mopts}
	if _, id, ok := procs.ContainerOf(cgPath); ok {
		t.ContainerID = id
	}
	tree := map[int]bool{}
	err = fs.Do(func(root *mount.Root) error {
		// The target's /proc/<pid>/cgroup as the mount's namespace sees
		// it: read again on the mount's thread only in an entered
		// namespace; in cgfreeze's own it is what was read above.
		seen := cg
		if enter {
			seen = procs.Cgroups{}
		}
		if err := t.inspect(root, viewNS, self, seen); err != nil {
			return err
		}
		if checkPID1 && opts.Recovering && carriesMark(root, t.Path) {
			checkPID1 = false
		}
		if checkPID1 {
			pids, err := treePIDs(root, t.Path)
			if err != nil {
				tree = nil // checkWorkload reads every process instead
				return nil
			}
			for _, pid := range pids {
				tree[pid] = true
			}
		}
		return nil
	})
	if err == nil && checkPID1 {
		others := true
		if l := <-listing; l.err != nil {
			err = fmt.Errorf("list the processes in %s: %w", opts.ProcRoot, l.err)
		} else if tree != nil {
			others, err = othersLeft(opts, version, l.pids, tree)
		}
		if err == nil && others {
			err = checkWorkload(opts)
		}
	}
	if err != nil {
		return nil, errors.Join(err, fs.Close())
	}
	return t, nil
}

type listResult struct {
	pids []int
	err  error
}

// hostPIDNamespace tells whether cgfreeze runs in the host's PID namespace,
// where the workload check leaves it to the host-init refusal.
func hostPIDNamespace(procRoot string) bool {
	ns, err := procs.Namespace(procRoot, os.Getpid(), "pid")
	return err == nil && ns == procs.InitPIDNamespace
}

func targetErr(opts Options, err error) error {
	if errors.Is(err, procs.ErrNoProcess) {
		return fmt.Errorf("%w: process %d does not exist in %s (check --pid)", ErrTargetNotFound, opts.PID, opts.ProcRoot)
	}
	return err
}

// Close releases the target's mount and thread.
func (t *Target) Close() error {
	return t.fs.Close()
}

// inspect runs on the mount's thread: it reads the target's path as the
// namespace the mount was made in sees it, refuses unsafe targets and picks
// the strategy.
//
// cg is the target's /proc/<pid>/cgroup as that namespace sees it, read
// here when it is empty.
func (t *Target) inspect(root *mount.Root, viewNS uint64, self int, cg procs.Cgroups) error {
	if len(cg.V1) == 0 && !cg.HasUnified {
		var err error
		if cg, err = procs.ReadCgroups(t.procRoot, t.PID); err != nil {
			return targetErr(Options{PID: t.PID, ProcRoot: t.procRoot}, err)
		}
	}
	_, t.Path, _ = mountSpec(t.Version, cg)
	if procs.Outside(t.Path) {
		return fmt.Errorf("target cgroup %s is outside the cgroup namespace cgfreeze works in", t.Path)
	}
	if t.Version == 2 && t.Path != "/" && IsChildName(path.Base(t.Path)) && ownedByParent(root, t.Path) {
		// The process sits in the child a subtree freeze made (that freeze
		// holds, or its holder died): the target is the child's parent.
		t.Path = path.Dir(t.Path)
	}
	if ro, err := root.ReadOnly(); err == nil && ro {
		return fmt.Errorf("%w: the cgroup mount refuses writes", ErrReadOnly)
	}

	if t.Path == "/" && viewNS == procs.InitCgroupNamespace {
		return fmt.Errorf("%w: process %d is in the root cgroup, which holds the whole machine; point --pid at a container's process", ErrUnsafeTarget, t.PID)
	}
	if own, err := procs.ReadCgroups(t.procRoot, self); err == nil {
		_, ownPath, err := mountSpec(t.Version, own)
		if err == nil && procs.IsAncestor(t.Path, ownPath) {
			return fmt.Errorf("%w: cgroup %s holds cgfreeze itself (PID %d, in %s): freezing it would freeze cgfreeze; run cgfreeze outside the target, for example in an ephemeral container (kubectl debug --target)", ErrUnsafeTarget, t.Path, self, ownPath)
		}
	}
	if err := t.refuseHostInit(); err != nil {
		return err
	}

	switch t.Version {
	case 1:
		t.Strategy = StrategyFreezer
		if ok, err := root.Exists(path.Join(t.Path, "freezer.state")); err != nil || !ok {
			return fmt.Errorf("%w: %s has no freezer.state", ErrNoFreezer, t.Path)
		}
	case 2:
		if ok, err := root.Exists(path.Join(t.Path, "cgroup.freeze")); err != nil || !ok {
			return fmt.Errorf("%w: %s has no cgroup.freeze (the kernel must be Linux 5.2 or newer)", ErrNoFreezer, t.Path)
		}
		t.Strategy = StrategyDirect
		if t.Path == "/" {
			// Under nsdelegate a namespace root's cgroup.freeze may not be
			// written from inside. Writing the value it already holds
			// changes nothing and tells whether it may.
			writable, err := freezeWritable(root, t.Path)
			if err != nil {
				return err
			}
			if !writable {
				t.Strategy = StrategySubtree
			}
		}
		// A threaded cgroup holds some threads of a process: freezing it
		// would stop a process half-way. A "domain threaded" one holds
		// whole processes, and its cgroup.freeze covers their threads,
		// but its processes cannot move into a domain child.
		typ, err := root.ReadFile(path.Join(t.Path, "cgroup.type"))
		if err == nil && typ == "domain threaded" && t.Strategy == StrategySubtree {
			return fmt.Errorf("%w: cgroup %s is of type %q (a threaded child makes it so): the subtree strategy would move its processes into a child cgroup, which the kernel allows only into a threaded one, where a process could not stay whole; only the target's own cgroup.freeze would freeze it, which may not be written from inside its cgroup namespace (nsdelegate): run cgfreeze on the node with --pid (the direct strategy), see docs/troubleshooting.md", ErrUnsafeTarget, t.Path, typ)
		}
		if err == nil && typ != "domain" && (typ != "domain threaded" || t.Strategy != StrategyDirect) {
			return fmt.Errorf("%w: cgroup %s is of type %q, which cgfreeze cannot freeze whole by %s; point --pid at a process of the container's main cgroup", ErrUnsafeTarget, t.Path, typ, t.Strategy)
		}
	}
	return nil
}

// refuseHostInit refuses the cgroup of the host's init, or an ancestor of
// it, when cgfreeze runs in the host's PID namespace.
func (t *Target) refuseHostInit() error {
	pidNS, err := procs.Namespace(t.procRoot, os.Getpid(), "pid")
	if err != nil || pidNS != procs.InitPIDNamespace {
		return nil
	}
	initCg, err := procs.ReadCgroups(t.procRoot, 1)
	if err != nil {
		return nil
	}
	_, initPath, err := mountSpec(t.Version, initCg)
	if err == nil && procs.IsAncestor(t.Path, initPath) {
		return fmt.Errorf("%w: cgroup %s holds the host's init (PID 1, in %s); freezing it would hang the machine; point --pid at a container's process", ErrUnsafeTarget, t.Path, initPath)
	}
	return nil
}

func freezeWritable(root *mount.Root, cgPath string) (bool, error) {
	file := path.Join(cgPath, "cgroup.freeze")
	cur, err := root.ReadFile(file)
	if err != nil {
		return false, err
	}
	if cur != "0" {
		// Frozen already: Freeze reports it; which strategy would apply
		// does not matter then.
		return true, nil
	}
	err = root.WriteFile(file, cur)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EPERM):
		return false, nil
	}
	return false, classify(err)
}

// mountSpec returns what to mount for a version and the target's path in
// that hierarchy, from /proc/<pid>/cgroup.
func mountSpec(version int, cg procs.Cgroups) (mount.Spec, string, error) {
	if version == 1 {
		p, ok := cg.V1["freezer"]
		if !ok {
			return mount.Spec{}, "", fmt.Errorf("%w: the process is in no v1 freezer hierarchy (is the freezer controller mounted? try --cgroup-version 2)", ErrNoFreezer)
		}
		return mount.Spec{Version: 1, Controllers: strings.Split(cg.V1Hierarchies["freezer"], ",")}, p, nil
	}
	if !cg.HasUnified {
		return mount.Spec{}, "", fmt.Errorf("%w: the process is in no cgroup v2 hierarchy (try --cgroup-version 1)", ErrNoFreezer)
	}
	return mount.Spec{Version: 2}, cg.Unified, nil
}
