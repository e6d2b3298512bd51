//go:build linux

package freezer

import (
	"context"
	"errors"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/cgfake"
	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// The unit tests of the strategies run on a fake cgroup file system
// (internal/cgfake on a temp dir), without root: CI runs them as an
// unprivileged user (integration/test.sh). Each has a twin on real cgroups in
// the integration suite.

// fakeTarget is a target on a fake hierarchy: cgPath is created with its
// ancestors, and holds the processes pids.
type fakeTarget struct {
	*Target
	k *cgfake.Kernel
}

const fakeTargetPath = "/kubepods/pod1/ctr"

func newFakeTarget(t *testing.T, s Strategy, pids ...int) fakeTarget {
	t.Helper()
	version := 2
	if s == StrategyFreezer {
		version = 1
	}
	k := cgfake.New(t.TempDir(), version)
	k.MustMkdir("/kubepods", "/kubepods/pod1", fakeTargetPath)
	k.Start(fakeTargetPath, pids...)
	spec := mount.Spec{Version: version}
	mopts := mount.Options{Fake: k.Fake}
	fs, err := mount.Open(spec, mopts)
	if err != nil {
		t.Fatal(err)
	}
	tg := &Target{PID: os.Getpid(), Version: version, Path: fakeTargetPath, Strategy: s, procRoot: "/proc", fs: fs, spec: spec, mopts: mopts}
	t.Cleanup(func() { _ = tg.Close() })
	return fakeTarget{tg, k}
}

func (ft fakeTarget) sub(name string) string { return path.Join(fakeTargetPath, name) }

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireHeld checks that nothing of the target runs and that cgfreeze's
// mark is where the strategy puts it.
func (ft fakeTarget) requireHeld(t *testing.T, what string) {
	t.Helper()
	if r := ft.k.Running(); len(r) != 0 {
		t.Errorf("%s: processes %v run", what, r)
	}
	marked := []string{ft.Path}
	if ft.Strategy == StrategySubtree {
		// The intent on the target, and the child's own mark.
		child := ft.ownChild()
		if child == "" {
			t.Fatalf("%s: no cgfreeze child under %s: %v", what, ft.Path, ft.k.Cgroups())
		}
		marked = append(marked, child)
	}
	for _, p := range marked {
		if _, ok := ft.k.Fake.Xattr(p, markXattr); !ok {
			t.Errorf("%s: no cgfreeze mark on %s", what, p)
		}
	}
}

// ownChild returns the path of the child cgroup a subtree freeze made
// under the target, "" when there is none.
func (ft fakeTarget) ownChild() string {
	for _, cg := range ft.k.Cgroups() {
		if dir, base := path.Split("/" + cg); dir == fakeTargetPath+"/" && strings.HasPrefix(base, ChildPrefix) {
			return "/" + cg
		}
	}
	return ""
}

// requireRestored checks that nothing is left: every process runs in the
// cgroup it started in, no mark, no cgfreeze child, no freeze asked for
// except foreign ones, no watch open, and the lock is free.
func (ft fakeTarget) requireRestored(t *testing.T, what string, where map[int]string, foreign ...string) {
	t.Helper()
	for pid, cg := range where {
		got := ft.k.CgroupOf(pid)
		if got != "" && got != cgKey(cg) {
			t.Errorf("%s: process %d is in %s, want %s", what, pid, got, cg)
		}
	}
	for _, cg := range ft.k.Cgroups() {
		want := slices.Contains(foreign, "/"+cg)
		if ft.k.Requested(cg) != want {
			t.Errorf("%s: %s asks frozen %v, want %v", what, cg, ft.k.Requested(cg), want)
		}
		if !want && ft.k.Frozen(cg) {
			t.Errorf("%s: %s is frozen", what, cg)
		}
		if ft.k.Fake.Watching(path.Join(cg, "cgroup.events")) != 0 {
			t.Errorf("%s: a watch on %s/cgroup.events is left open", what, cg)
		}
	}
	if child := ft.ownChild(); child != "" {
		t.Errorf("%s: %s is left", what, child)
	}
	if m := ft.k.Fake.Xattrs(markXattr); len(m) != 0 {
		t.Errorf("%s: cgfreeze marks left on %v", what, m)
	}
	if !ft.k.Exists(ft.Path) {
		return
	}
	if err := ft.fs.Do(func(root *mount.Root) error {
		l, err := lockTarget(root, ft.Path)
		if err == nil {
			_ = l.Close()
		}
		return err
	}); err != nil {
		t.Errorf("%s: the target's lock: %v", what, err)
	}
}

func cgKey(p string) string {
	if p == "/" {
		return "."
	}
	return p[1:]
}

var allStrategies = []Strategy{StrategyFreezer, StrategyDirect, StrategySubtree}

func TestFakeFreezeThaw(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101, 102)
			ft.k.MustMkdir(ft.sub("worker"))
			ft.k.Start(ft.sub("worker"), 201)
			where := map[int]string{101: fakeTargetPath, 102: fakeTargetPath, 201: ft.sub("worker")}
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			ft.requireHeld(t, "after Freeze")
			if f.Processes != 0 {
				t.Errorf("Processes = %d before Count, want 0 (Freeze does not count)", f.Processes)
			}
			if n, err := f.Count(); err != nil || n != 3 || f.Processes != 3 {
				t.Errorf("Count() = %d, %v; Processes %d; want 3", n, err, f.Processes)
			}
			if s == StrategySubtree {
				if got := ft.k.Procs(ft.sub(f.child)); !slices.Equal(got, []int{101, 102}) {
					t.Errorf("the cgfreeze child holds %v, want [101 102]", got)
				}
				if !ft.k.Requested(ft.sub("worker")) {
					t.Errorf("the workload's child cgroup is not frozen in place")
				}
			}
			// A second freeze, from this process or another, is
			// refused while the first holds.
			if _, err := Freeze(testCtx(t, time.Second), ft.Target); !errors.Is(err, ErrAlreadyFrozen) {
				t.Errorf("second Freeze = %v, want ErrAlreadyFrozen", err)
			}
			st, err := Inspect(ft.Target)
			if err != nil || st.State != "frozen" || st.FrozenBy != "cgfreeze" || !st.Held || st.Processes != 3 {
				t.Errorf("Inspect = %+v, %v; want frozen by a held cgfreeze, 3 processes", st, err)
			}
			if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after Thaw", where)
			// Thawed targets freeze again.
			f, err = Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatalf("freeze after the thaw: %v", err)
			}
			if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after the second Thaw", where)
		})
	}
}

// A freeze that the kernel does not confirm by the deadline is rolled back.
func TestFakeFreezeRollback(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			ft.k.MustMkdir(ft.sub("worker"))
			ft.k.Start(ft.sub("worker"), 201)
			ft.k.Stick(ft.sub("worker"), true)
			where := map[int]string{101: fakeTargetPath, 201: ft.sub("worker")}
			start := time.Now()
			_, err := Freeze(testCtx(t, 300*time.Millisecond), ft.Target)
			if !errors.Is(err, ErrFreezeFailed) || errors.Is(err, ErrThawFailed) {
				t.Fatalf("Freeze = %v, want ErrFreezeFailed, rolled back", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Freeze took %v past a 300ms deadline", d)
			}
			ft.k.Stick(ft.sub("worker"), false)
			ft.requireRestored(t, "after the rollback", where)
		})
	}
}

// A write the kernel refuses half-way through a freeze is rolled back too.
func TestFakeFreezeWriteRefused(t *testing.T) {
	for _, tt := range []struct {
		s     Strategy
		file  string
		value string
	}{
		{StrategyFreezer, "freezer.state", "FROZEN"},
		{StrategyDirect, "cgroup.freeze", "1"},
		{StrategySubtree, "worker/cgroup.freeze", "1"},
		{StrategySubtree, fixedChildName + "/cgroup.procs", ""},
	} {
		t.Run(string(tt.s)+"/"+tt.file, func(t *testing.T) {
			fixChildName(t)
			ft := newFakeTarget(t, tt.s, 101)
			ft.k.MustMkdir(ft.sub("worker"))
			ft.k.Start(ft.sub("worker"), 201)
			ft.k.FailWrites(ft.sub(tt.file), tt.value, unix.EBUSY)
			_, err := Freeze(testCtx(t, 2*time.Second), ft.Target)
			if !errors.Is(err, unix.EBUSY) || errors.Is(err, ErrThawFailed) {
				t.Fatalf("Freeze = %v, want EBUSY, rolled back", err)
			}
			ft.k.FailWrites(ft.sub(tt.file), tt.value, nil)
			ft.requireRestored(t, "after the rollback", map[int]string{101: fakeTargetPath, 201: ft.sub("worker")})
		})
	}
}

// A target frozen by another tool is refused and left as it is.
func TestFakeFrozenByOther(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			ft.k.SetFreeze(fakeTargetPath, true)
			before := ft.k.Writes()
			_, err := Freeze(testCtx(t, time.Second), ft.Target)
			if !errors.Is(err, ErrAlreadyFrozen) {
				t.Fatalf("Freeze = %v, want ErrAlreadyFrozen", err)
			}
			if w := ft.k.Writes(); len(w) != len(before) {
				t.Errorf("the refused Freeze wrote %v", w[len(before):])
			}
			if !ft.k.Frozen(fakeTargetPath) {
				t.Errorf("the other tool's freeze was undone")
			}
		})
	}
}

// A subtree freeze leaves a child cgroup that another tool froze alone, and
// frozen, through the freeze and the thaw.
func TestFakeSubtreeForeignChild(t *testing.T) {
	ft := newFakeTarget(t, StrategySubtree, 101)
	ft.k.MustMkdir(ft.sub("paused"), ft.sub("worker"))
	ft.k.Start(ft.sub("paused"), 301)
	ft.k.Start(ft.sub("worker"), 201)
	ft.k.SetFreeze(ft.sub("paused"), true)
	f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.children, []string{"worker"}) {
		t.Errorf("children frozen in place = %v, want [worker]", f.children)
	}
	if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after Thaw", map[int]string{101: fakeTargetPath, 201: ft.sub("worker"), 301: ft.sub("paused")}, ft.sub("paused"))
}

// The leftovers of a holder that died (its mark, its freeze, no lock) are
// undone by the next Freeze, and by Recover.
func TestFakeRecover(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101, 102)
			ft.k.MustMkdir(ft.sub("worker"))
			ft.k.Start(ft.sub("worker"), 201)
			where := map[int]string{101: fakeTargetPath, 102: fakeTargetPath, 201: ft.sub("worker")}
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			f.Abandon() // the holder dies: its lock goes, its freeze stays
			ft.requireHeld(t, "after the holder died")
			rec, err := Recover(testCtx(t, 5*time.Second), ft.Target)
			if err != nil || !rec.Recovered || rec.Strategy != s || rec.Holder != os.Getpid() {
				t.Fatalf("Recover = %+v, %v; want the dead holder's %s freeze recovered", rec, err, s)
			}
			ft.requireRestored(t, "after Recover", where)

			f, err = Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			f.Abandon()
			f, err = Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			if !f.Recovered.Recovered {
				t.Errorf("Freeze over a dead holder's freeze: Recovered = %+v", f.Recovered)
			}
			ft.requireHeld(t, "after Freeze over a dead holder's freeze")
			if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after Thaw", where)
		})
	}
}

// A removed target thaws as a no-op.
func TestFakeThawGone(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			ft.k.Exit(101)
			if s == StrategySubtree {
				// Its manager removes the child first, as a
				// recursive removal does.
				if err := ft.k.Rmdir(ft.sub(f.child)); err != nil {
					t.Fatal(err)
				}
			}
			if err := ft.k.Rmdir(fakeTargetPath); err != nil {
				t.Fatal(err)
			}
			if err := f.Thaw(testCtx(t, 2*time.Second)); err != nil {
				t.Errorf("Thaw of a removed target = %v, want nil", err)
			}
		})
	}
}

// fixedChildName is the name fixChildName gives the subtree child, for a
// test that must name the child's files before the freeze makes it.
const fixedChildName = ChildPrefix + "00000000000000aa"

func fixChildName(t *testing.T) {
	t.Helper()
	saved := newChildName
	newChildName = func() (string, error) { return fixedChildName, nil }
	t.Cleanup(func() { newChildName = saved })
}
