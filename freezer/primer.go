//go:build linux

package freezer

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// primerMounts are where a cgroup2 hierarchy is looked for, in the calling
// process's own mount namespace: the unified layout's, and the hybrid one's.
var primerMounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// Primer starts, from a process other than the one that thaws, what a
// subtree thaw first waits for: the RCU grace period that the first
// migration after a quiet while pays (Frozen.PrepareThaw says more). It
// moves the calling process into the cgroup it is in already (its own PID
// written to its own cgroup.procs): a migration that moves nothing, which
// takes cgroup_threadgroup_rwsem for writing as any does, and so starts
// the grace period that the thaw's moves, a moment later, find under way.
// The supervisor, which receives the signal that ends a hold before the
// holder does, primes as it relays it.
//
// It never writes a PID other than the caller's own, and only to the
// cgroup.procs that listed the caller when it was opened: it can move no
// process but the caller, whatever happens to the target (and the caller
// only back into the cgroup it was in, had someone moved it since).
type Primer struct {
	procs *os.File
	pid   []byte
	once  sync.Once
}

// OpenPrimer returns the primer of a subtree target's thaw, or nil for the
// other strategies or when the caller's own cgroup2 cgroup.procs cannot be
// found, read or opened for writing in its mount namespace (a hybrid host
// without cgroup2 mounted, a read-only mount): priming is only a gain in
// time, and a thaw without it is as correct. A nil Primer does nothing.
func OpenPrimer(t *Target) *Primer {
	if t == nil || t.Strategy != StrategySubtree {
		return nil
	}
	p, err := openOwnPrimer()
	if err != nil {
		return nil
	}
	return p
}

// openOwnPrimer opens the calling process's primer (a variable: the unit
// tests of fake targets replace it, so that they write to no real cgroup).
var openOwnPrimer = func() (*Primer, error) {
	return openPrimer(primerMounts, "/proc/self/cgroup", os.Getpid())
}

// openPrimer opens the cgroup.procs of the cgroup that cgroupFile (a
// /proc/<pid>/cgroup) names for pid, below the first of mounts that is a
// cgroup2 mount and whose cgroup.procs there lists pid.
func openPrimer(mounts []string, cgroupFile string, pid int) (*Primer, error) {
	b, err := procs.ReadFile(cgroupFile)
	if err != nil {
		return nil, err
	}
	cg, err := procs.ParseCgroups(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if !cg.HasUnified || procs.Outside(cg.Unified) {
		return nil, fmt.Errorf("%s: no cgroup2 path of its own", cgroupFile)
	}
	self := strconv.Itoa(pid)
	for _, m := range mounts {
		var st unix.Statfs_t
		if err := unix.Statfs(m, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		file := path.Join(m, cg.Unified, "cgroup.procs")
		// The mount may be rooted elsewhere than the caller's cgroup
		// namespace: the path is trusted only if the file lists the
		// caller.
		content, err := os.ReadFile(file)
		if err != nil || !listsPID(string(content), self) {
			continue
		}
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		if err != nil {
			continue
		}
		return &Primer{procs: f, pid: []byte(self)}, nil
	}
	return nil, fmt.Errorf("no cgroup2 mount of %v lists process %d in %s", mounts, pid, cg.Unified)
}

// listsPID tells whether a cgroup.procs content lists pid.
func listsPID(content, pid string) bool {
	for line := range strings.Lines(content) {
		if strings.TrimSpace(line) == pid {
			return true
		}
	}
	return false
}

// Prime makes the no-op migration, which returns once the grace period it
// started has passed (the thaw's first move, made meanwhile by another
// process, returns about then too): a caller that must not wait calls it
// on a goroutine of its own, one that has nothing else to do until the
// thaw is over calls it in line, and spares the wake-up of another thread
// (0.1 to 0.5 ms on 2 CPUs) before the grace period starts. Only the
// first call writes; errors are ignored.
func (p *Primer) Prime() {
	if p == nil {
		return
	}
	p.once.Do(func() { _, _ = p.procs.Write(p.pid) })
}

// Close closes the primer's file (the descriptor itself once a write under
// way has returned) and makes later Prime calls do nothing.
func (p *Primer) Close() error {
	if p == nil {
		return nil
	}
	p.once.Do(func() {})
	return p.procs.Close()
}
