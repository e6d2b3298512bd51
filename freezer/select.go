//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/cgfreeze/cgfreeze/procs"
)

// selectPID returns the process to resolve the target from when the caller
// named a container (opts.ContainerID) or left the PID to its default
// (opts.PIDDefaulted); otherwise opts.PID. It changes nothing.
func selectPID(opts Options) (int, error) {
	switch {
	case opts.ContainerID != "":
		return selectContainer(opts)
	case opts.PIDDefaulted:
		return opts.PID, checkWorkload(opts)
	}
	return opts.PID, nil
}

// listVersion is the hierarchy whose paths group processes into containers:
// the one the freeze would use.
func listVersion(opts Options, cg procs.Cgroups) (int, error) {
	if opts.Version != 0 {
		return opts.Version, nil
	}
	return DetectVersion(opts.SysCgroup, cg)
}

// ownCgroup returns cgfreeze's own cgroup path in the version's hierarchy,
// "" when it cannot be read (procRoot is another PID namespace's).
func ownCgroup(procRoot string, version int) string {
	cg, err := procs.ReadCgroups(procRoot, os.Getpid())
	if err != nil {
		return ""
	}
	_, p, err := mountSpec(version, cg)
	if err != nil {
		return ""
	}
	return p
}

// isOwn tells whether a process in cgroup p belongs to cgfreeze's side: its
// own cgroup, one below it, or one of its ancestors (the namespace root, a
// pod's cgroup), which hold no other container's workload.
func isOwn(own, p string) bool {
	return own != "" && (procs.Below(own, p) || procs.Below(p, own))
}

// checkWorkload refuses the default target, PID 1, when the PID namespace
// shows processes of other containers: in a pod that shares its PID
// namespace (shareProcessNamespace: true) PID 1 is the pause container,
// and freezing it would freeze nothing the user meant. Processes in PID
// 1's cgroup or below it are its container's; processes in cgfreeze's own
// cgroup, below it or in its ancestors are cgfreeze's side. Anything else
// is another container. Dead processes (zombies) are nobody's: they run
// nothing, and an agent killed in an ephemeral container leaves its
// processes as zombies of the frozen PID 1, which cannot reap them until
// the thaw (procs.Containers leaves them out). In the host's PID namespace
// the check is left to the host-init refusal, which says more.
func checkWorkload(opts Options) error {
	cg, err := procs.ReadCgroups(opts.ProcRoot, opts.PID)
	if err != nil {
		return targetErr(opts, err)
	}
	if ns, err := procs.Namespace(opts.ProcRoot, os.Getpid(), "pid"); err == nil && ns == procs.InitPIDNamespace {
		return nil
	}
	version, err := listVersion(opts, cg)
	if err != nil {
		return err
	}
	_, p1, err := mountSpec(version, cg)
	if err != nil {
		return nil // Resolve reports it, with the same words
	}
	if base := path.Base(p1); version == 2 && IsChildName(base) {
		// A subtree freeze holds PID 1 in the child it made. The name
		// proves nothing, and the marks cannot be read from here; it only
		// widens which processes count as PID 1's container's, while
		// Resolve takes the parent for the target only on proof. (Not
		// path.Dir: it would clean "/../x" into "/x".)
		if p1 = strings.TrimSuffix(p1, "/"+base); p1 == "" {
			p1 = "/"
		}
	}
	own := ownCgroup(opts.ProcRoot, version)
	cs, err := procs.Containers(opts.ProcRoot, version)
	if err != nil {
		return fmt.Errorf("list the processes in %s: %w", opts.ProcRoot, err)
	}
	var mine, others []procs.Container
	for _, c := range cs {
		other, target := false, false
		for _, p := range c.Processes {
			switch {
			case procs.Below(p1, p.Cgroup):
				target = true
			case isOwn(own, p.Cgroup):
			default:
				other = true
			}
		}
		switch {
		case other:
			others = append(others, c)
		case target:
			mine = append(mine, c)
		}
	}
	if len(others) == 0 {
		return nil
	}
	return fmt.Errorf("%w: PID %d (cgroup %s) is not the only workload in this PID namespace: processes of %d other container(s) share it, as in a pod with shareProcessNamespace: true, whose PID 1 is the pause container; name the container to freeze with --container-id ID (or a unique prefix), or pass --pid %d to freeze PID %d's cgroup anyway. PID %d's:%s\nOthers:%s",
		ErrUnsafeTarget, opts.PID, p1, len(others), opts.PID, opts.PID, opts.PID, describeContainers(mine), describeContainers(others))
}

// selectContainer returns a process of the container whose ID is, or
// starts with, opts.ContainerID: one in the container's own cgroup (or in
// a child named as a subtree freeze names its own), so that the target is
// the container's cgroup and not one of its sub-cgroups. Resolve takes the
// parent of such a child for the target only when the marks prove the
// child cgfreeze's.
func selectContainer(opts Options) (int, error) {
	cg, err := procs.ReadCgroups(opts.ProcRoot, os.Getpid())
	if err != nil {
		// procRoot shows another PID namespace; PID 1 tells the version
		// as well.
		cg, _ = procs.ReadCgroups(opts.ProcRoot, 1)
	}
	version, err := listVersion(opts, cg)
	if err != nil {
		return 0, err
	}
	cs, err := procs.Containers(opts.ProcRoot, version)
	if err != nil {
		return 0, fmt.Errorf("list the processes in %s: %w", opts.ProcRoot, err)
	}
	own := ownCgroup(opts.ProcRoot, version)
	var seen []procs.Container
	for _, c := range cs {
		if c.HasID || !isOwn(own, c.Cgroup) {
			seen = append(seen, c)
		}
	}
	match := procs.MatchContainers(cs, opts.ContainerID)
	switch len(match) {
	case 0:
		return 0, fmt.Errorf("%w: no container with ID %q among the processes in %s (cgroup v%d); containers seen:%s",
			ErrTargetNotFound, opts.ContainerID, opts.ProcRoot, version, describeContainers(seen))
	case 1:
	default:
		return 0, fmt.Errorf("%w: %q matches %d containers, give more of the ID:%s",
			ErrAmbiguousContainer, opts.ContainerID, len(match), describeContainers(match))
	}
	c := match[0]
	for _, p := range c.Processes {
		if p.Cgroup == c.Cgroup {
			return p.PID, nil
		}
	}
	for _, p := range c.Processes {
		if dir, base := path.Split(p.Cgroup); dir == c.Cgroup+"/" && IsChildName(base) {
			return p.PID, nil
		}
	}
	return c.Processes[0].PID, nil
}

// describeContainers lists containers for a message, one per line (a
// person reads the list in the log; a long one on one line was unreadable).
func describeContainers(cs []procs.Container) string {
	if len(cs) == 0 {
		return " none"
	}
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("\n  - " + c.String())
	}
	return b.String()
}

// The workload check of a resolved target. checkWorkload reads the cgroup
// and the state of every process in the PID namespace (procs.Containers,
// which reads the command line of each container's first process only),
// some 30 µs a process: 0.15 s for 5000 here. Resolve does it in two steps
// instead: it lists the PIDs that procRoot shows (one read of the
// directory, while it resolves the target), reads which of them the
// target's cgroup tree holds (treePIDs, through the mount, in the same PID
// namespace), and only the rest,
// usually cgfreeze's own few processes, have their cgroup read
// (othersLeft). If none of them is another container's, there is nothing
// to refuse; otherwise checkWorkload decides, and says why. A process
// forked meanwhile, or one that moved, can only send it to checkWorkload.

// othersLeft tells whether a process in listed, outside tree, is not
// cgfreeze's own: in a cgroup other than cgfreeze's, below it or above it.
// Processes that are gone, dead (zombies: the cgroup.procs of their cgroup
// no longer lists them, so they are outside every tree), or in no cgroup of
// the version's hierarchy, are nobody's (as checkWorkload counts them).
func othersLeft(opts Options, version int, listed []int, tree map[int]bool) (bool, error) {
	own := ownCgroup(opts.ProcRoot, version)
	for _, pid := range listed {
		if tree[pid] {
			continue
		}
		cg, err := procs.ReadCgroups(opts.ProcRoot, pid)
		if errors.Is(err, procs.ErrNoProcess) {
			continue
		}
		if err != nil {
			return false, err
		}
		_, p, err := mountSpec(version, cg)
		if err != nil {
			continue
		}
		if !isOwn(own, p) && !procs.Dead(opts.ProcRoot, pid) {
			return true, nil
		}
	}
	return false, nil
}
