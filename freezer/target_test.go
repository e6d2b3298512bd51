//go:build linux

package freezer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
)

func TestMountSpec(t *testing.T) {
	for _, tt := range []struct {
		name     string
		version  int
		procs    []string
		wantSpec mount.Spec
		wantPath string
	}{
		{
			name:     "v1 freezer alone",
			version:  1,
			procs:    []string{"12:freezer:/docker/abc", "11:cpu,cpuacct:/docker/abc", "1:name=systemd:/docker/abc", "0::/"},
			wantSpec: mount.Spec{Version: 1, Controllers: []string{"freezer"}},
			wantPath: "/docker/abc",
		},
		{
			name:     "v1 co-mounted set",
			version:  1,
			procs:    []string{"11:memory:/k/pod/ctr", "4:freezer,devices:/k/pod/ctr", "1:name=systemd:/k/pod/ctr"},
			wantSpec: mount.Spec{Version: 1, Controllers: []string{"freezer", "devices"}},
			wantPath: "/k/pod/ctr",
		},
		{
			name:     "v1 co-mounted set, freezer last",
			version:  1,
			procs:    []string{"3:cpu,cpuacct,freezer:/x"},
			wantSpec: mount.Spec{Version: 1, Controllers: []string{"cpu", "cpuacct", "freezer"}},
			wantPath: "/x",
		},
		{
			name:     "v1 namespace-relative",
			version:  1,
			procs:    []string{"12:freezer:/../abc"},
			wantSpec: mount.Spec{Version: 1, Controllers: []string{"freezer"}},
			wantPath: "/../abc",
		},
		{
			name:     "v2",
			version:  2,
			procs:    []string{"0::/kubepods.slice/pod1/ctr"},
			wantSpec: mount.Spec{Version: 2},
			wantPath: "/kubepods.slice/pod1/ctr",
		},
		{
			name:     "v2 root",
			version:  2,
			procs:    []string{"0::/"},
			wantSpec: mount.Spec{Version: 2},
			wantPath: "/",
		},
		{
			name:     "v2 on a hybrid host uses the unified path",
			version:  2,
			procs:    []string{"12:freezer:/docker/abc", "0::/system.slice/docker-abc.scope"},
			wantSpec: mount.Spec{Version: 2},
			wantPath: "/system.slice/docker-abc.scope",
		},
		{
			name:     "v2 namespace-relative",
			version:  2,
			procs:    []string{"0::/../abc"},
			wantSpec: mount.Spec{Version: 2},
			wantPath: "/../abc",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, p, err := mountSpec(tt.version, cgroupsOf(t, tt.procs...))
			if err != nil {
				t.Fatalf("mountSpec(%d, %q): unexpected error %v", tt.version, tt.procs, err)
			}
			if !reflect.DeepEqual(spec, tt.wantSpec) || p != tt.wantPath {
				t.Errorf("mountSpec(%d, %q) = %#v, %q; want %#v, %q", tt.version, tt.procs, spec, p, tt.wantSpec, tt.wantPath)
			}
		})
	}
}

func TestMountSpecNoFreezer(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version int
		procs   []string
		want    string
	}{
		{"v1 without a freezer line", 1, []string{"11:memory:/x", "1:name=systemd:/x", "0::/x"}, "try --cgroup-version 2"},
		{"v1 on a pure v2 host", 1, []string{"0::/x"}, "try --cgroup-version 2"},
		{"v2 without 0::", 2, []string{"12:freezer:/x", "1:name=systemd:/x"}, "try --cgroup-version 1"},
		{"v2 with a named hierarchy only", 2, []string{"1:name=systemd:/"}, "try --cgroup-version 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec, p, err := mountSpec(tt.version, cgroupsOf(t, tt.procs...))
			if !errors.Is(err, ErrNoFreezer) {
				t.Fatalf("mountSpec(%d, %q) = %#v, %q, %v; want ErrNoFreezer", tt.version, tt.procs, spec, p, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("mountSpec(%d, %q) error %q, want it to contain %q", tt.version, tt.procs, err, tt.want)
			}
			if !reflect.DeepEqual(spec, mount.Spec{}) || p != "" {
				t.Errorf("mountSpec(%d, %q) returned %#v, %q with its error, want zero values", tt.version, tt.procs, spec, p)
			}
		})
	}
}

// fakeProcTree writes a fake proc filesystem: for each PID a cgroup file
// (when cgroup != "") and an ns/cgroup link (when nsLink != "").
type fakeProcess struct {
	cgroup  string
	nsLink  string
	pidNS   string // the ns/pid link, when not ""
	cmdline string // NUL-separated, when not ""
	stat    string // the stat file, when not ""
}

func fakeProcTree(t *testing.T, ps map[int]fakeProcess) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range ps {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if p.cgroup != "" {
			if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(p.cgroup), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if p.nsLink != "" {
			if err := os.Symlink(p.nsLink, filepath.Join(dir, "ns", "cgroup")); err != nil {
				t.Fatal(err)
			}
		}
		if p.pidNS != "" {
			if err := os.Symlink(p.pidNS, filepath.Join(dir, "ns", "pid")); err != nil {
				t.Fatal(err)
			}
		}
		if p.cmdline != "" {
			if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(p.cmdline), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if p.stat != "" {
			if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(p.stat), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// The Resolve tests below only reach the errors that Resolve returns before
// it mounts anything: every fake tree lacks something that a mount needs.

func TestResolveInvalidPID(t *testing.T) {
	root := t.TempDir()
	for _, pid := range []int{0, -1} {
		target, err := Resolve(Options{PID: pid, ProcRoot: root, SysCgroup: filepath.Join(root, "sys")})
		if !errors.Is(err, ErrTargetNotFound) || target != nil {
			t.Errorf("Resolve(PID %d) = %v, %v; want nil, ErrTargetNotFound", pid, target, err)
		}
	}
}

func TestResolveMissingProcess(t *testing.T) {
	root := fakeProcTree(t, map[int]fakeProcess{
		os.Getpid(): {cgroup: "0::/\n", nsLink: "cgroup:[4026531835]"},
	})
	target, err := Resolve(Options{PID: 999999999, ProcRoot: root, SysCgroup: filepath.Join(root, "sys")})
	if !errors.Is(err, ErrTargetNotFound) || target != nil {
		t.Fatalf("Resolve(missing PID) = %v, %v; want nil, ErrTargetNotFound", target, err)
	}
	want := "target process not found: process 999999999 does not exist in " + root + " (check --pid)"
	if err.Error() != want {
		t.Errorf("Resolve(missing PID) error\n  %q\nwant\n  %q", err, want)
	}
}

func TestResolveErrorsBeforeMount(t *testing.T) {
	self := os.Getpid()
	const pid = 4242
	if self == pid {
		t.Skip("the test process has the fake target's PID")
	}
	for _, tt := range []struct {
		name    string
		ps      map[int]fakeProcess
		opts    Options
		wantErr error
		want    string // a substring of the error
	}{
		{
			name:    "malformed cgroup file",
			ps:      map[int]fakeProcess{pid: {cgroup: "0::relative\n"}},
			want:    "path is not absolute",
			wantErr: nil,
		},
		{
			name:    "forced v2 on a v1-only target",
			ps:      map[int]fakeProcess{pid: {cgroup: "4:freezer:/x\n"}},
			opts:    Options{Version: 2},
			wantErr: ErrNoFreezer,
			want:    "try --cgroup-version 1",
		},
		{
			name:    "forced v1 on a v2-only target",
			ps:      map[int]fakeProcess{pid: {cgroup: "0::/x\n"}},
			opts:    Options{Version: 1},
			wantErr: ErrNoFreezer,
			want:    "try --cgroup-version 2",
		},
		{
			name:    "detection finds no freezer",
			ps:      map[int]fakeProcess{pid: {cgroup: "1:name=systemd:/x\n"}},
			wantErr: ErrNoFreezer,
			want:    "neither a v1 freezer hierarchy nor cgroup v2 found",
		},
		{
			name:    "cgfreeze itself not in the proc tree",
			ps:      map[int]fakeProcess{pid: {cgroup: "0::/x\n", nsLink: "cgroup:[4026532451]"}},
			opts:    Options{Version: 2},
			wantErr: procs.ErrNoProcess,
			want:    "read cgroup namespace of cgfreeze itself",
		},
		{
			name: "target without a cgroup namespace link",
			ps: map[int]fakeProcess{
				pid:  {cgroup: "0::/x\n"},
				self: {cgroup: "0::/\n", nsLink: "cgroup:[4026531835]"},
			},
			opts: Options{Version: 2},
			want: "namespace cgroup of process 4242",
		},
		{
			name: "outside target with --cgroup-mount",
			ps: map[int]fakeProcess{
				pid:  {cgroup: "0::/../abc\n", nsLink: "cgroup:[4026532451]"},
				self: {cgroup: "0::/\n", nsLink: "cgroup:[4026532999]"},
			},
			opts:    Options{Version: 2, CgroupMount: "/nonexistent/cgroup-mount"},
			wantErr: ErrUnsafeTarget,
			want:    "the target's cgroup /../abc is outside cgfreeze's cgroup namespace, so /nonexistent/cgroup-mount cannot show it; drop --cgroup-mount",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeProcTree(t, tt.ps)
			opts := tt.opts
			opts.PID, opts.ProcRoot, opts.SysCgroup = pid, root, filepath.Join(root, "nonexistent-sys")
			target, err := Resolve(opts)
			if err == nil {
				_ = target.Close()
				t.Fatalf("Resolve: no error, want %q", tt.want)
			}
			if target != nil {
				t.Errorf("Resolve returned a target with its error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Resolve error %v, want it to wrap %v", err, tt.wantErr)
			}
			if !errors.Is(tt.wantErr, ErrTargetNotFound) && errors.Is(err, ErrTargetNotFound) {
				t.Errorf("Resolve error %v wraps ErrTargetNotFound, want another error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Resolve error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestTargetErr(t *testing.T) {
	opts := Options{PID: 7, ProcRoot: "/host/proc"}
	err := targetErr(opts, procs.ErrNoProcess)
	if !errors.Is(err, ErrTargetNotFound) {
		t.Errorf("targetErr(ErrNoProcess) = %v, want ErrTargetNotFound", err)
	}
	if want := "target process not found: process 7 does not exist in /host/proc (check --pid)"; err.Error() != want {
		t.Errorf("targetErr(ErrNoProcess) = %q, want %q", err, want)
	}
	other := errors.New("permission denied")
	if got := targetErr(opts, other); got != other { //nolint:errorlint // identity is the point
		t.Errorf("targetErr(other) = %v, want it unchanged", got)
	}
}

// fakePIDNamespace gives process pid of a fake tree a pid namespace link.
func fakePIDNamespace(t *testing.T, root string, pid int, link string) {
	t.Helper()
	if err := os.Symlink(link, filepath.Join(root, strconv.Itoa(pid), "ns", "pid")); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseHostInit(t *testing.T) {
	self := os.Getpid()
	const initPIDNS, otherPIDNS = "pid:[4026531836]", "pid:[4026532777]"
	for _, tt := range []struct {
		name    string
		selfNS  string
		version int
		initCg  string
		path    string
		refused bool
	}{
		{"v2 init's own cgroup", initPIDNS, 2, "0::/init.scope\n", "/init.scope", true},
		{"v2 ancestor of init's cgroup", initPIDNS, 2, "0::/system.slice/init.scope\n", "/system.slice", true},
		{"v2 sibling of init's cgroup", initPIDNS, 2, "0::/init.scope\n", "/kubepods/pod1/ctr", false},
		{"v2 child of init's cgroup", initPIDNS, 2, "0::/init.scope\n", "/init.scope/child", false},
		{"v1 init's freezer cgroup", initPIDNS, 1, "7:freezer:/init\n0::/init.scope\n", "/init", true},
		{"v1 other freezer cgroup", initPIDNS, 1, "7:freezer:/init\n0::/init.scope\n", "/docker/abc", false},
		// In a container's PID namespace PID 1 is the target, not the
		// host's init: nothing to refuse here.
		{"own PID namespace", otherPIDNS, 2, "0::/init.scope\n", "/init.scope", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeProcTree(t, map[int]fakeProcess{
				1:    {cgroup: tt.initCg},
				self: {cgroup: "0::/\n"},
			})
			fakePIDNamespace(t, root, self, tt.selfNS)
			target := &Target{PID: 4242, Version: tt.version, Path: tt.path, procRoot: root}
			err := target.refuseHostInit()
			if tt.refused {
				if !errors.Is(err, ErrUnsafeTarget) || !strings.Contains(err.Error(), "host's init") {
					t.Errorf("refuseHostInit(%s) = %v, want ErrUnsafeTarget naming the host's init", tt.path, err)
				}
			} else if err != nil {
				t.Errorf("refuseHostInit(%s) = %v, want nil", tt.path, err)
			}
		})
	}
}
