//go:build linux

package freezer

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/mount"
	"golang.org/x/sys/unix"
)

// Unit twins of integration/ownership_test.go (issue 9, cases 5 and 9) on
// the fake cgroup file system: cgfreeze owns by its marks, not by names.

// do runs fn on the target's mount.
func (ft fakeTarget) do(t *testing.T, fn func(root *mount.Root) error) {
	t.Helper()
	if err := ft.fs.Do(fn); err != nil {
		t.Fatal(err)
	}
}

// TestFakeWorkloadCgfreezeChild: a workload's own cgroups named cgfreeze
// and cgfreeze/sub, each holding a process, are frozen with the rest and
// left where they are by the thaw, and by Recover.
func TestFakeWorkloadCgfreezeChild(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			ft.k.MustMkdir(ft.sub("cgfreeze"), ft.sub("cgfreeze/sub"))
			ft.k.Start(ft.sub("cgfreeze"), 201)
			ft.k.Start(ft.sub("cgfreeze/sub"), 301)
			where := map[int]string{101: fakeTargetPath, 201: ft.sub("cgfreeze"), 301: ft.sub("cgfreeze/sub")}
			if rec, err := Recover(testCtx(t, time.Second), ft.Target); err != nil || rec.Recovered {
				t.Fatalf("Recover = %+v, %v; want nothing recovered", rec, err)
			}
			ft.requireRestored(t, "after Recover", where)
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			ft.requireHeld(t, "after Freeze")
			if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after Thaw", where)
			for _, p := range []string{"cgfreeze", "cgfreeze/sub"} {
				if !ft.k.Exists(ft.sub(p)) {
					t.Errorf("the workload's %s was removed", p)
				}
			}
		})
	}
}

// TestFakeWorkloadFrozeOwnChild: a cgfreeze child the workload froze
// itself stays frozen through Recover, Freeze and Thaw.
func TestFakeWorkloadFrozeOwnChild(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101)
			own := ft.sub("cgfreeze")
			ft.k.MustMkdir(own)
			ft.k.SetFreeze(own, true)
			if rec, err := Recover(testCtx(t, time.Second), ft.Target); err != nil || rec.Recovered {
				t.Fatalf("Recover = %+v, %v; want nothing recovered", rec, err)
			}
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after Thaw", map[int]string{101: fakeTargetPath}, own)
		})
	}
}

// leaveSubtree lays out what a subtree holder that died leaves, step by
// step: the intent on the target (intent), the child made (mkdir), the
// child's own mark (childMark), the processes moved into it, frozen.
func leaveSubtree(t *testing.T, ft fakeTarget, name string, intent, mkdir, childMarked bool) {
	t.Helper()
	m := newMark("/proc", StrategySubtree)
	m.Child = name
	child := ft.sub(name)
	ft.do(t, func(root *mount.Root) error {
		if intent {
			if err := writeMark(root, ft.Path, m); err != nil {
				return err
			}
		}
		if !mkdir {
			return nil
		}
		if err := root.Mkdir(child); err != nil {
			return err
		}
		if childMarked {
			if err := writeMark(root, child, childMark(m)); err != nil {
				return err
			}
		}
		if err := root.WriteFile(path.Join(child, "cgroup.freeze"), "1"); err != nil {
			return err
		}
		for _, pid := range ft.k.Procs(ft.Path) {
			if err := root.WriteFile(path.Join(child, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestFakeRecoverByProof: a subtree holder that died at any step leaves a
// child that its marks prove cgfreeze's: the intent alone (died between
// mkdir and the child's mark), the child's mark alone (a cgfreeze from
// before the intent, with the legacy name), or both. Recover restores the
// target. A legacy-named child without any mark is the workload's.
func TestFakeRecoverByProof(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		child                   string
		intent, mkdir, childMrk bool
		recovered               bool
	}{
		{"intent before mkdir", fixedChildName, true, false, false, true},
		{"intent, unmarked child", fixedChildName, true, true, false, true},
		{"intent and marked child", fixedChildName, true, true, true, true},
		{"legacy child with its mark", legacyChildName, false, true, true, true},
		{"random-named child with its mark, no intent", fixedChildName, false, true, true, true},
		{"legacy child without a mark", legacyChildName, false, true, false, false},
		{"random-named child without any mark", fixedChildName, false, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ft := newFakeTarget(t, StrategySubtree, 101, 102)
			leaveSubtree(t, ft, tt.child, tt.intent, tt.mkdir, tt.childMrk)
			where := map[int]string{101: fakeTargetPath, 102: fakeTargetPath}
			st, err := Inspect(ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := Recover(testCtx(t, 5*time.Second), ft.Target)
			if err != nil || rec.Recovered != tt.recovered {
				t.Fatalf("Recover = %+v, %v; want recovered %v", rec, err, tt.recovered)
			}
			if !tt.recovered {
				// Not cgfreeze's: untouched, its processes where they
				// were, its own freeze on.
				if st.FrozenBy == "cgfreeze" {
					t.Errorf("Inspect = %+v: an unmarked child called cgfreeze's", st)
				}
				if got := ft.k.Procs(ft.sub(tt.child)); !slices.Equal(got, []int{101, 102}) {
					t.Errorf("the unmarked child holds %v, want [101 102]", got)
				}
				return
			}
			if tt.mkdir && (st.State != "frozen" || st.FrozenBy != "cgfreeze") {
				t.Errorf("Inspect = %+v, want frozen by cgfreeze", st)
			}
			ft.requireRestored(t, "after Recover", where)
			if ft.k.Exists(ft.sub(tt.child)) {
				t.Errorf("%s is left", tt.child)
			}
		})
	}
}

// TestFakeSubtreeMkdirRefused: the kernel refuses the child (EAGAIN:
// cgroup.max.descendants or cgroup.max.depth): ErrUnsafeTarget, with the
// reason, nothing left (not the intent either). Other refusals are
// ErrUnsafeTarget too, but a lack of privilege stays ErrNotPrivileged.
func TestFakeSubtreeMkdirRefused(t *testing.T) {
	for _, tt := range []struct {
		errno error
		want  error
	}{
		{unix.EAGAIN, ErrUnsafeTarget},
		{unix.ENOSPC, ErrUnsafeTarget},
		{unix.EPERM, ErrNotPrivileged},
	} {
		t.Run(tt.errno.Error(), func(t *testing.T) {
			ft := newFakeTarget(t, StrategySubtree, 101)
			onMkdir := ft.k.Fake.OnMkdir
			ft.k.Fake.OnMkdir = func(p string) error {
				if strings.HasPrefix(path.Base(p), ChildPrefix) {
					_ = os.Remove(filepath.Join(ft.k.Fake.Dir, p))
					return &os.PathError{Op: "mkdir", Path: p, Err: tt.errno}
				}
				return onMkdir(p)
			}
			_, err := Freeze(testCtx(t, 2*time.Second), ft.Target)
			if !errors.Is(err, tt.want) || errors.Is(err, ErrFreezeFailed) {
				t.Fatalf("Freeze = %v, want %v", err, tt.want)
			}
			if errors.Is(tt.errno, unix.EAGAIN) && !strings.Contains(err.Error(), "cgroup.max.descendants or cgroup.max.depth") {
				t.Errorf("error %q does not name the limits", err)
			}
			ft.requireRestored(t, "after the refusal", map[int]string{101: fakeTargetPath})
		})
	}
}

// TestFakeSubtreeVanishedChild: child cgroups that vanish during the
// freeze (a workload that creates and removes them) are no error: one
// removed between the listing and the read of its cgroup.freeze, one
// removed when cgfreeze writes it.
func TestFakeSubtreeVanishedChild(t *testing.T) {
	ft := newFakeTarget(t, StrategySubtree, 101)
	ft.k.MustMkdir(ft.sub("stays"), ft.sub("goes"))
	ft.k.Start(ft.sub("stays"), 201)
	// A directory without the cgroup's files reads as one removed
	// after the listing.
	if err := os.Mkdir(filepath.Join(ft.k.Fake.Dir, ft.sub("half-gone")), 0o755); err != nil {
		t.Fatal(err)
	}
	onWrite := ft.k.Fake.OnWrite
	goes := ft.sub("goes")
	ft.k.Fake.OnWrite = func(p, value string) error {
		if p == strings.TrimPrefix(goes, "/")+"/cgroup.freeze" && value == "1" {
			if err := ft.k.Rmdir(goes); err != nil {
				return err
			}
			return &os.PathError{Op: "open", Path: p, Err: unix.ENOENT}
		}
		return onWrite(p, value)
	}
	f, err := Freeze(testCtx(t, 2*time.Second), ft.Target)
	if err != nil {
		t.Fatalf("Freeze with vanishing children = %v", err)
	}
	if err := f.Thaw(testCtx(t, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(ft.k.Fake.Dir, ft.sub("half-gone"))); err != nil {
		t.Fatal(err)
	}
	ft.requireRestored(t, "after Thaw", map[int]string{101: fakeTargetPath, 201: ft.sub("stays")})
}

// TestFakeRecoverLeavesMarkedTargets: a child cgroup that another cgfreeze
// froze as its target (a direct mark, or a subtree intent naming a child
// of its own) is not the parent's subtree child: Recover of the parent
// leaves it frozen, marked and where it is.
func TestFakeRecoverLeavesMarkedTargets(t *testing.T) {
	for _, s := range []Strategy{StrategyDirect, StrategySubtree} {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, StrategyDirect, 101)
			other := ft.sub(fixedChildName)
			ft.k.MustMkdir(other)
			ft.k.Start(other, 201)
			m := newMark("/proc", s)
			if s == StrategySubtree {
				m.Child = ChildPrefix + "00000000000000bb"
			}
			ft.do(t, func(root *mount.Root) error { return writeMark(root, other, m) })
			ft.k.SetFreeze(other, true)
			rec, err := Recover(testCtx(t, time.Second), ft.Target)
			if err != nil || rec.Recovered {
				t.Fatalf("Recover of the parent = %+v, %v; want nothing recovered", rec, err)
			}
			if !ft.k.Frozen(other) || ft.k.CgroupOf(201) != cgKey(other) {
				t.Errorf("the other cgfreeze's target was touched: frozen %v, PID 201 in %s", ft.k.Frozen(other), ft.k.CgroupOf(201))
			}
			if _, ok := ft.k.Fake.Xattr(other, markXattr); !ok {
				t.Errorf("the other cgfreeze's mark was removed")
			}
		})
	}
}
