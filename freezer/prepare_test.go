//go:build linux

package freezer

import (
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

// PrepareThaw writes a process of the subtree strategy's child to the
// child's own cgroup.procs (a migration that moves nothing, which makes the
// kernel start the grace period the thaw's moves would wait for), and
// nothing anywhere for the other strategies; the freeze holds as before and
// the thaw restores everything.
func TestFakePrepareThaw(t *testing.T) {
	for _, s := range allStrategies {
		t.Run(string(s), func(t *testing.T) {
			ft := newFakeTarget(t, s, 101, 102)
			where := map[int]string{101: fakeTargetPath, 102: fakeTargetPath}
			f, err := Freeze(testCtx(t, 5*time.Second), ft.Target)
			if err != nil {
				t.Fatal(err)
			}
			type write struct{ p, v string }
			writes := make(chan write, 16)
			kernel := ft.k.Fake.OnWrite
			ft.k.Fake.OnWrite = func(p, v string) error {
				writes <- write{p, v}
				return kernel(p, v)
			}
			f.PrepareThaw()
			if s == StrategySubtree {
				select {
				case w := <-writes:
					if want := path.Join(ft.sub(f.child), "cgroup.procs"); strings.TrimPrefix(w.p, "/") != strings.TrimPrefix(want, "/") || (w.v != "101" && w.v != "102") {
						t.Errorf("PrepareThaw wrote %q to %s, want 101 or 102 to %s", w.v, w.p, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("PrepareThaw wrote nothing")
				}
				if got := ft.k.Procs(ft.sub(f.child)); !slices.Equal(got, []int{101, 102}) {
					t.Errorf("after PrepareThaw the cgfreeze child holds %v, want [101 102]", got)
				}
			}
			select {
			case w := <-writes:
				t.Errorf("PrepareThaw wrote %q to %s as well", w.v, w.p)
			case <-time.After(100 * time.Millisecond):
			}
			ft.k.Fake.OnWrite = kernel
			ft.requireHeld(t, "after PrepareThaw")
			if err := f.Thaw(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			ft.requireRestored(t, "after Thaw", where)
		})
	}
}
