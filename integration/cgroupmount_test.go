package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bindScript runs "$@" in a mount namespace of its own where $2 is a bind
// mount of $1.
const bindScript = `
exec @UNSHARE@ --mount --propagation private /bin/busybox sh -c '
	@MOUNT@ --bind "$1" "$2" || exit 98
	shift 2; exec "$@"' bind "$@"
`

// TestCgroupMountNotRoot is issue 9's case 6: --cgroup-mount must show the
// root of the hierarchy. A bind of a subdirectory (what some runtimes give
// a container) would have cgfreeze freeze <subdir>/<target path>, a
// different cgroup than the events name: here a decoy cgroup made at that
// path. It is refused (exit 4) and nothing is frozen, neither the target
// nor the decoy; so is a directory below the hierarchy's mount. The root of
// the mount itself is accepted.
func TestCgroupMountNotRoot(t *testing.T) {
	for _, k := range []kind{kindV1, kindDirect} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			mnt := cg2Mount
			if k == kindV1 {
				mnt = v1FreezerMount
			}
			// The decoy: <target>/<target's path>, what a bind of the
			// target's cgroup shows at the target's path.
			decoy := tg.cg
			for _, seg := range strings.Split(strings.Trim(tg.cg.rel, "/"), "/") {
				decoy = h.child(decoy, seg)
			}
			dw := h.startWorkload(decoy, workloadOpts{})
			before, decoyBefore := h.snapshot(tg.cg), h.snapshot(decoy)
			dst := filepath.Join(h.dir, "bound-subdir")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what string
				argv []string
			}{
				{"a bind of a subdirectory", slices.Concat([]string{busybox, "sh", h.script("bind.sh", bindScript), tg.cg.dir, dst},
					tg.argv("", "--cgroup-mount", dst))},
				{"a directory below the mount", tg.argv("", "--cgroup-mount", tg.cg.dir)},
			} {
				r := h.startCgfreeze("cgfreeze --cgroup-mount "+c.what, c.argv)
				e := r.requireRefusal(exitUnsafeTarget)
				for _, want := range []string{"--cgroup-mount", "not the root of the cgroup hierarchy"} {
					if !strings.Contains(e.Error, want) {
						t.Errorf("%s: error %q lacks %q", c.what, e.Error, want)
					}
				}
				t.Logf("%s: %s", c.what, e.Error)
				h.requireProgress(c.what+": the target after the refusal", tg.w)
				h.requireProgress(c.what+": the decoy after the refusal", dw)
				h.requireSameCgroups(c.what+": the target", before, tg.w.pid)
				h.requireSameCgroups(c.what+": the decoy", decoyBefore, dw.pid)
			}
			h.checkLeftovers()

			// The root of the hierarchy's mount is what --cgroup-mount is for.
			r := tg.start("", "--cgroup-mount", mnt, "--duration", "200ms")
			r.waitEvent("frozen")
			tg.requireFrozen("through --cgroup-mount " + mnt)
			r.waitEvent("thawed")
			if code := r.wait(); code != 0 {
				t.Errorf("--cgroup-mount %s: exit %d: %s", mnt, code, r.describe())
			}
			h.requireProgress("after the thaw", tg.w, dw)
			h.checkLeftovers()
		})
	}
}
