// Package cgfake plays the kernel's part of a cgroup file system for unit
// tests that run without root: a Kernel keeps the state of a tree of cgroups
// (which processes are where, what each cgroup's freezer asks for and has
// reached) and writes it into the files of a plain directory that
// mount.Options{Fake: k.Fake} makes a Root of, the files cgfreeze reads:
// cgroup.procs, and cgroup.freeze and cgroup.events (v2) or freezer.state,
// freezer.self_freezing and freezer.parent_freezing (v1). Writes through the
// Root act as the kernel would act on them (a PID written to cgroup.procs
// moves that process; 1 written to cgroup.freeze freezes the cgroup and its
// descendants and notifies cgroup.events). The test drives the rest as
// another actor would: processes that join or exit, cgroups created or
// removed, another tool's freeze or thaw, a freeze that does not complete.
package cgfake

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// Kernel is the fake kernel of one hierarchy.
type Kernel struct {
	// Fake is the directory and its hooks; pass it as mount.Options.Fake.
	Fake    *mount.Fake
	version int

	mu      sync.Mutex
	cgroups map[string]*cgroup // by cleaned path ("." is the root)
	procs   map[int]string     // PID -> cgroup
	// stuck cgroups never finish freezing (a task in uninterruptible
	// sleep): v2 cgroup.events stays "frozen 0", v1 reads FREEZING.
	stuck map[string]bool
	// fail makes writes to a file fail with an error.
	fail map[string]error
	// writes records every write through the Root, as "path=value".
	writes []string
	// before is called with each write before it acts (BeforeWrite).
	before func(p, value string)
	// events counts the notifications of each cgroup.events.
	events map[string]int
}

type cgroup struct {
	freeze bool // v2 cgroup.freeze, v1 self_freezing
	// shown is what the files said last, to notify only on changes.
	shown string
}

// New makes a fake hierarchy of a cgroup version (1: the freezer
// controller's) in dir, with its root cgroup.
func New(dir string, version int) *Kernel {
	k := &Kernel{Fake: mount.NewFake(dir), version: version, cgroups: map[string]*cgroup{".": {}},
		procs: map[int]string{}, stuck: map[string]bool{}, fail: map[string]error{}, events: map[string]int{}}
	k.Fake.OnWrite = k.onWrite
	k.Fake.OnMkdir = k.onMkdir
	k.Fake.OnRmdir = k.onRmdir
	k.Fake.OnRead = k.onRead
	k.mu.Lock()
	k.syncLocked()
	k.mu.Unlock()
	return k
}

func key(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}

func parentOf(k string) string {
	if k == "." {
		return ""
	}
	d := path.Dir(k)
	if d == "." || d == "/" {
		return "."
	}
	return d
}

func (k *Kernel) file(cg, name string) string {
	return filepath.Join(k.Fake.Dir, cg, name)
}

// Mkdir creates a cgroup as another process would (its parent must exist).
func (k *Kernel) Mkdir(p string) error {
	c := key(p)
	if err := os.Mkdir(filepath.Join(k.Fake.Dir, c), 0o755); err != nil {
		return err
	}
	return k.onMkdir(c)
}

// MustMkdir creates cgroups, each after its parent, and panics on failure.
func (k *Kernel) MustMkdir(paths ...string) {
	for _, p := range paths {
		if err := k.Mkdir(p); err != nil {
			panic(err)
		}
	}
}

func (k *Kernel) onMkdir(p string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := key(p)
	if _, ok := k.cgroups[parentOf(c)]; !ok {
		return &os.PathError{Op: "mkdir", Path: p, Err: unix.ENOENT}
	}
	k.cgroups[c] = &cgroup{}
	k.syncLocked()
	return nil
}

// Rmdir removes a cgroup as another process would: refused (EBUSY) while it
// has processes or children.
func (k *Kernel) Rmdir(p string) error { return k.onRmdir(key(p)) }

func (k *Kernel) onRmdir(p string) error {
	k.mu.Lock()
	c := key(p)
	if _, ok := k.cgroups[c]; !ok {
		k.mu.Unlock()
		return &os.PathError{Op: "rmdir", Path: p, Err: unix.ENOENT}
	}
	for q := range k.cgroups {
		if parentOf(q) == c {
			k.mu.Unlock()
			return &os.PathError{Op: "rmdir", Path: p, Err: unix.EBUSY}
		}
	}
	for _, q := range k.procs {
		if q == c {
			k.mu.Unlock()
			return &os.PathError{Op: "rmdir", Path: p, Err: unix.EBUSY}
		}
	}
	delete(k.cgroups, c)
	delete(k.stuck, c)
	k.mu.Unlock()
	k.Fake.Forget(c)
	err := os.RemoveAll(filepath.Join(k.Fake.Dir, c))
	// The removed files wake their pollers, as kernfs does.
	k.Fake.Notify(path.Join(c, "cgroup.events"))
	k.mu.Lock()
	k.syncLocked()
	k.mu.Unlock()
	return err
}

// Exists tells whether a cgroup exists.
func (k *Kernel) Exists(p string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.cgroups[key(p)]
	return ok
}

// Start puts a new process in a cgroup (a fork, or a process that joins it:
// kubectl exec).
func (k *Kernel) Start(p string, pids ...int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, pid := range pids {
		k.procs[pid] = key(p)
	}
	k.syncLocked()
}

// Exit ends processes (killed: v2 lets a fatal signal through a freeze).
func (k *Kernel) Exit(pids ...int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, pid := range pids {
		delete(k.procs, pid)
	}
	k.syncLocked()
}

// Procs lists the processes of a cgroup (its own, sorted).
func (k *Kernel) Procs(p string) []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.procsLocked(key(p))
}

func (k *Kernel) procsLocked(c string) []int {
	var pids []int
	for pid, q := range k.procs {
		if q == c {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// CgroupOf returns the cgroup of a process, "" when it does not exist.
func (k *Kernel) CgroupOf(pid int) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.procs[pid]
}

// SetFreeze writes a cgroup's own freeze as another tool would (runc
// pause/resume, the owner): v2 cgroup.freeze, v1 freezer.state.
func (k *Kernel) SetFreeze(p string, on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.cgroups[key(p)]; ok {
		c.freeze = on
	}
	k.syncLocked()
}

// Requested tells what a cgroup's own freeze asks for.
func (k *Kernel) Requested(p string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.cgroups[key(p)]
	return ok && c.freeze
}

// Frozen tells whether a cgroup's processes are frozen: its own freeze or an
// ancestor's, and not stuck.
func (k *Kernel) Frozen(p string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.frozenLocked(key(p))
}

func (k *Kernel) requestedLocked(c string) bool {
	for q := c; q != ""; q = parentOf(q) {
		if cg, ok := k.cgroups[q]; ok && cg.freeze {
			return true
		}
	}
	return false
}

func (k *Kernel) frozenLocked(c string) bool {
	if !k.requestedLocked(c) {
		return false
	}
	// A cgroup is frozen when its own and its descendants' tasks are.
	for q := range k.cgroups {
		if (q == c || strings.HasPrefix(q, c+"/") || c == ".") && k.stuck[q] {
			return false
		}
	}
	return true
}

// Running lists the processes that run: not frozen.
func (k *Kernel) Running() []int {
	k.mu.Lock()
	defer k.mu.Unlock()
	var pids []int
	for pid, c := range k.procs {
		if !k.frozenLocked(c) {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// Stick makes a cgroup's freeze never complete (on), or complete (off).
func (k *Kernel) Stick(p string, on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if on {
		k.stuck[key(p)] = true
	} else {
		delete(k.stuck, key(p))
	}
	k.syncLocked()
}

// FailWrites makes every write of value ("" for any value) to the file p
// fail with err (nil: no more).
func (k *Kernel) FailWrites(p, value string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		delete(k.fail, key(p)+"="+value)
	} else {
		k.fail[key(p)+"="+value] = err
	}
}

// Writes returns the writes made through the Root so far, "path=value".
func (k *Kernel) Writes() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.writes)
}

// Cgroups lists the existing cgroups, sorted.
func (k *Kernel) Cgroups() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for c := range k.cgroups {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// BeforeWrite, when set, is called with every write through the Root
// before the fake kernel acts on it, for a test that changes the tree at
// that moment (a cgroup removed right before cgfreeze writes to it).
func (k *Kernel) BeforeWrite(fn func(p, value string)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.before = fn
}

func (k *Kernel) onWrite(p, value string) error {
	k.mu.Lock()
	before := k.before
	k.mu.Unlock()
	if before != nil {
		before(key(p), value)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	f := key(p)
	k.writes = append(k.writes, f+"="+value)
	if err, ok := k.fail[f+"="]; ok {
		return err
	}
	if err, ok := k.fail[f+"="+value]; ok {
		return err
	}
	c, name := parentOf(f), path.Base(f)
	cg, ok := k.cgroups[c]
	if !ok {
		return unix.ENODEV
	}
	switch {
	case name == "cgroup.freeze" && k.version == 2:
		switch value {
		case "0", "1":
			cg.freeze = value == "1"
		default:
			return unix.EINVAL
		}
	case name == "freezer.state" && k.version == 1:
		switch value {
		case "FROZEN", "THAWED":
			cg.freeze = value == "FROZEN"
		default:
			return unix.EINVAL
		}
	case name == "cgroup.procs":
		pid, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return unix.EINVAL
		}
		if _, ok := k.procs[pid]; !ok {
			return unix.ESRCH
		}
		k.procs[pid] = c
	default:
		return fmt.Errorf("%s: the fake kernel does not take writes: %w", f, unix.EACCES)
	}
	k.syncLocked()
	return nil
}

// onRead answers a read from the state, as kernfs generates a file at each
// read.
func (k *Kernel) onRead(p string) (string, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := key(p)
	c, name := parentOf(f), path.Base(f)
	cg, ok := k.cgroups[c]
	if !ok {
		if _, dir := k.cgroups[f]; dir {
			return "", false, nil
		}
		return "", false, unix.ENOENT
	}
	v, ok := k.filesLocked(c, cg)[name]
	return v, ok, nil
}

// syncLocked writes every cgroup's files from the state and notifies the
// cgroup.events that changed.
func (k *Kernel) syncLocked() {
	var notify []string
	for c, cg := range k.cgroups {
		files := k.filesLocked(c, cg)
		var shown strings.Builder
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			shown.WriteString(name + ":" + files[name] + ";")
		}
		if shown.String() == cg.shown {
			continue
		}
		old := cg.shown
		cg.shown = shown.String()
		for _, name := range names {
			if err := writeAtomic(k.file(c, name), files[name]); err != nil && !errors.Is(err, os.ErrNotExist) {
				panic(err)
			}
		}
		if k.version == 2 && old != "" && !strings.Contains(old, "cgroup.events:"+files["cgroup.events"]+";") {
			notify = append(notify, path.Join(c, "cgroup.events"))
			k.events[c]++
		}
	}
	for _, p := range notify {
		k.Fake.Notify(p)
	}
}

// writeAtomic rewrites a file in place (the same inode: a reader that keeps
// it open, as a hold does, sees the new content).
func writeAtomic(name, content string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	return errors.Join(err, f.Close())
}

func (k *Kernel) populatedLocked(c string) bool {
	for _, q := range k.procs {
		if q == c || strings.HasPrefix(q, c+"/") || c == "." {
			return true
		}
	}
	return false
}

func (k *Kernel) filesLocked(c string, cg *cgroup) map[string]string {
	var procs strings.Builder
	for _, pid := range k.procsLocked(c) {
		procs.WriteString(strconv.Itoa(pid) + "\n")
	}
	files := map[string]string{"cgroup.procs": procs.String()}
	if k.version == 2 {
		files["cgroup.freeze"] = strconv.Itoa(btoi(cg.freeze)) + "\n"
		files["cgroup.events"] = fmt.Sprintf("populated %d\nfrozen %d\n", btoi(k.populatedLocked(c)), btoi(k.frozenLocked(c)))
		files["cgroup.type"] = "domain\n"
		return files
	}
	state := "THAWED"
	switch {
	case k.frozenLocked(c):
		state = "FROZEN"
	case k.requestedLocked(c):
		state = "FREEZING"
	}
	parent := parentOf(c)
	files["freezer.state"] = state + "\n"
	files["freezer.self_freezing"] = strconv.Itoa(btoi(cg.freeze)) + "\n"
	files["freezer.parent_freezing"] = strconv.Itoa(btoi(parent != "" && k.requestedLocked(parent))) + "\n"
	files["tasks"] = procs.String()
	return files
}

// Notifications returns how many times a cgroup's cgroup.events was
// notified.
func (k *Kernel) Notifications(p string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.events[key(p)]
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
