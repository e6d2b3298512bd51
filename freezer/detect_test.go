//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// File system magics as statfs(2) reports them.
const (
	magicCgroup2 = int64(unix.CGROUP2_SUPER_MAGIC)
	magicCgroup  = int64(unix.CGROUP_SUPER_MAGIC)
	magicTmpfs   = int64(unix.TMPFS_MAGIC)
	magicSysfs   = int64(unix.SYSFS_MAGIC)
)

// fakeFS is a statfs stand-in: a path's file system type, or ENOENT.
type fakeFS map[string]int64

func (f fakeFS) fsType(p string) (int64, error) {
	if typ, ok := f[p]; ok {
		return typ, nil
	}
	return 0, &fs.PathError{Op: "statfs", Path: p, Err: unix.ENOENT}
}

// cgroupsOf parses the lines of a /proc/<pid>/cgroup file.
func cgroupsOf(t *testing.T, lines ...string) procs.Cgroups {
	t.Helper()
	cg, err := procs.ParseCgroups(strings.NewReader(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatalf("ParseCgroups(%q): %v", lines, err)
	}
	return cg
}

func TestDetectVersion(t *testing.T) {
	const sys = "/sys/fs/cgroup"
	hybridProc := []string{"12:freezer:/docker/abc", "1:name=systemd:/docker/abc", "0::/system.slice/docker-abc.scope"}
	v1Proc := []string{"11:memory:/docker/abc", "4:freezer,devices:/docker/abc", "1:name=systemd:/docker/abc"}
	v2Proc := []string{"0::/system.slice/docker-abc.scope"}
	noFreezerProc := []string{"11:memory:/docker/abc", "1:name=systemd:/docker/abc"}

	for _, tt := range []struct {
		name  string
		fs    fakeFS
		procs []string
		want  int
	}{
		{
			name:  "cgroup2 at sys",
			fs:    fakeFS{sys: magicCgroup2},
			procs: v2Proc,
			want:  2,
		},
		{
			// The mounted file system decides, not the /proc entries.
			name:  "cgroup2 at sys beats a freezer line",
			fs:    fakeFS{sys: magicCgroup2},
			procs: hybridProc,
			want:  2,
		},
		{
			name:  "tmpfs with a freezer hierarchy (v1 host)",
			fs:    fakeFS{sys: magicTmpfs, sys + "/freezer": magicCgroup},
			procs: v1Proc,
			want:  1,
		},
		{
			name:  "tmpfs with freezer and unified (hybrid host)",
			fs:    fakeFS{sys: magicTmpfs, sys + "/freezer": magicCgroup, sys + "/unified": magicCgroup2},
			procs: hybridProc,
			want:  1,
		},
		{
			name:  "tmpfs with only unified",
			fs:    fakeFS{sys: magicTmpfs, sys + "/unified": magicCgroup2, sys + "/systemd": magicCgroup},
			procs: noFreezerProc,
			want:  2,
		},
		{
			// /proc lists a freezer line, but no freezer hierarchy is
			// mounted under sys: the mounts decide.
			name:  "tmpfs with only unified beats a freezer line",
			fs:    fakeFS{sys: magicTmpfs, sys + "/unified": magicCgroup2},
			procs: hybridProc,
			want:  2,
		},
		{
			// A directory named freezer that is no cgroup mount.
			name:  "tmpfs with a plain freezer directory and unified",
			fs:    fakeFS{sys: magicTmpfs, sys + "/freezer": magicTmpfs, sys + "/unified": magicCgroup2},
			procs: v1Proc,
			want:  2,
		},
		{
			name:  "tmpfs with a cgroup2 freezer directory falls back",
			fs:    fakeFS{sys: magicTmpfs, sys + "/freezer": magicCgroup2},
			procs: v1Proc,
			want:  1,
		},
		{
			name:  "tmpfs with a v1 unified directory falls back",
			fs:    fakeFS{sys: magicTmpfs, sys + "/unified": magicCgroup},
			procs: v2Proc,
			want:  2,
		},
		{
			name:  "empty tmpfs falls back to a freezer line",
			fs:    fakeFS{sys: magicTmpfs},
			procs: v1Proc,
			want:  1,
		},
		{
			name:  "empty tmpfs falls back to 0::",
			fs:    fakeFS{sys: magicTmpfs},
			procs: v2Proc,
			want:  2,
		},
		{
			name:  "sys missing, freezer line",
			fs:    fakeFS{},
			procs: v1Proc,
			want:  1,
		},
		{
			name:  "sys missing, freezer line and 0::",
			fs:    fakeFS{},
			procs: hybridProc,
			want:  1,
		},
		{
			name:  "sys missing, only 0::",
			fs:    fakeFS{},
			procs: v2Proc,
			want:  2,
		},
		{
			name:  "sys missing, namespace-relative 0::",
			fs:    fakeFS{},
			procs: []string{"0::/../abc"},
			want:  2,
		},
		{
			// /sys/fs/cgroup not mounted in a container: statfs sees /sys.
			name:  "sysfs at sys falls back",
			fs:    fakeFS{sys: magicSysfs, sys + "/freezer": magicCgroup},
			procs: v2Proc,
			want:  2,
		},
		{
			// A v1 hierarchy mounted right at sys is not looked into.
			name:  "cgroup v1 at sys falls back",
			fs:    fakeFS{sys: magicCgroup},
			procs: v1Proc,
			want:  1,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := detectVersion(tt.fs.fsType, sys, cgroupsOf(t, tt.procs...))
			if err != nil || got != tt.want {
				t.Errorf("detectVersion = %d, %v; want %d, nil", got, err, tt.want)
			}
		})
	}
}

func TestDetectVersionNoFreezer(t *testing.T) {
	const sys = "/custom/cgroup"
	for _, tt := range []struct {
		name  string
		fs    fakeFS
		procs []string
	}{
		{"sys missing, no freezer, no 0::", fakeFS{}, []string{"11:memory:/docker/abc", "1:name=systemd:/docker/abc"}},
		{"empty tmpfs, no freezer, no 0::", fakeFS{sys: magicTmpfs}, []string{"1:name=systemd:/"}},
		{"sysfs, no freezer, no 0::", fakeFS{sys: magicSysfs}, []string{"3:cpu,cpuacct:/x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := detectVersion(tt.fs.fsType, sys, cgroupsOf(t, tt.procs...))
			if !errors.Is(err, ErrNoFreezer) {
				t.Fatalf("detectVersion = %d, %v; want ErrNoFreezer", got, err)
			}
			if got != 0 {
				t.Errorf("detectVersion returned version %d with its error, want 0", got)
			}
			want := "no cgroup freezer: neither a v1 freezer hierarchy nor cgroup v2 found (at /custom/cgroup or in /proc/<pid>/cgroup)"
			if err.Error() != want {
				t.Errorf("detectVersion error\n  %q\nwant\n  %q", err, want)
			}
		})
	}
	// The zero Cgroups (no entries at all) has no freezer either.
	if _, err := detectVersion(fakeFS{}.fsType, sys, procs.Cgroups{}); !errors.Is(err, ErrNoFreezer) {
		t.Errorf("detectVersion(zero Cgroups) error %v, want ErrNoFreezer", err)
	}
}

// TestDetectVersionLooksBelowSys checks which paths detection statfs-es.
func TestDetectVersionLooksBelowSys(t *testing.T) {
	sys := "/run/host/sys/fs/cgroup"
	var asked []string
	fsType := func(p string) (int64, error) {
		asked = append(asked, p)
		return fakeFS{sys: magicTmpfs}.fsType(p)
	}
	if _, err := detectVersion(fsType, sys, cgroupsOf(t, "0::/")); err != nil {
		t.Fatal(err)
	}
	want := []string{sys, filepath.Join(sys, "freezer"), filepath.Join(sys, "unified")}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Errorf("detectVersion asked for %q, want %q", asked, want)
	}
}

// TestDetectVersionReal runs the exported function with the real statfs on a
// path that does not exist, so that only the /proc entries decide.
func TestDetectVersionReal(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	for _, tt := range []struct {
		procs []string
		want  int
	}{
		{[]string{"4:freezer:/x"}, 1},
		{[]string{"0::/x"}, 2},
	} {
		got, err := DetectVersion(missing, cgroupsOf(t, tt.procs...))
		if err != nil || got != tt.want {
			t.Errorf("DetectVersion(missing, %q) = %d, %v; want %d, nil", tt.procs, got, err, tt.want)
		}
	}
	if _, err := DetectVersion(missing, cgroupsOf(t, "1:name=systemd:/")); !errors.Is(err, ErrNoFreezer) {
		t.Errorf("DetectVersion(missing, name=systemd only) error %v, want ErrNoFreezer", err)
	}
}
