package procs_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cgfreeze/cgfreeze/procs"
)

// fakeProc is a fake proc filesystem: testdata/proc/<pid>/{cgroup,stat,ns/*}.
// The ns entries are real symlinks, as in /proc, whose targets do not exist.
const fakeProc = "testdata/proc"

func TestParseCgroups(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want procs.Cgroups
	}{
		{
			name: "v1 only",
			in: "11:memory:/kubepods/pod1/ctr\n" +
				"4:freezer:/kubepods/pod1/ctr\n" +
				"3:devices:/kubepods/pod1/ctr\n",
			want: procs.Cgroups{
				V1: map[string]string{
					"memory":  "/kubepods/pod1/ctr",
					"freezer": "/kubepods/pod1/ctr",
					"devices": "/kubepods/pod1/ctr",
				},
				V1Hierarchies: map[string]string{
					"memory":  "memory",
					"freezer": "freezer",
					"devices": "devices",
				},
			},
		},
		{
			name: "hybrid",
			in: "12:freezer:/docker/abc\n" +
				"10:memory:/docker/abc\n" +
				"1:name=systemd:/docker/abc\n" +
				"0::/\n",
			want: procs.Cgroups{
				V1: map[string]string{
					"freezer":      "/docker/abc",
					"memory":       "/docker/abc",
					"name=systemd": "/docker/abc",
				},
				V1Hierarchies: map[string]string{
					"freezer":      "freezer",
					"memory":       "memory",
					"name=systemd": "name=systemd",
				},
				Unified:    "/",
				HasUnified: true,
			},
		},
		{
			name: "pure v2 root",
			in:   "0::/\n",
			want: procs.Cgroups{
				V1:            map[string]string{},
				V1Hierarchies: map[string]string{},
				Unified:       "/",
				HasUnified:    true,
			},
		},
		{
			name: "pure v2 without trailing newline",
			in:   "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
			want: procs.Cgroups{
				V1:            map[string]string{},
				V1Hierarchies: map[string]string{},
				Unified:       "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
				HasUnified:    true,
			},
		},
		{
			name: "co-mounted controllers",
			in: "2:cpu,cpuacct:/x\n" +
				"5:freezer,devices:/y\n",
			want: procs.Cgroups{
				V1: map[string]string{
					"cpu":     "/x",
					"cpuacct": "/x",
					"freezer": "/y",
					"devices": "/y",
				},
				V1Hierarchies: map[string]string{
					"cpu":     "cpu,cpuacct",
					"cpuacct": "cpu,cpuacct",
					"freezer": "freezer,devices",
					"devices": "freezer,devices",
				},
			},
		},
		{
			name: "named hierarchy only",
			in:   "1:name=systemd:/\n",
			want: procs.Cgroups{
				V1:            map[string]string{"name=systemd": "/"},
				V1Hierarchies: map[string]string{"name=systemd": "name=systemd"},
			},
		},
		{
			name: "namespace-relative path",
			in:   "0::/../abc\n",
			want: procs.Cgroups{
				V1:            map[string]string{},
				V1Hierarchies: map[string]string{},
				Unified:       "/../abc",
				HasUnified:    true,
			},
		},
		{
			name: "colon in the path",
			in:   "0::/a:b\n",
			want: procs.Cgroups{
				V1:            map[string]string{},
				V1Hierarchies: map[string]string{},
				Unified:       "/a:b",
				HasUnified:    true,
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := procs.ParseCgroups(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParseCgroups(%q): unexpected error %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCgroups(%q) =\n  %#v\nwant\n  %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCgroupsErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want string // a substring of the error
	}{
		{"empty", "", "no cgroup entries"},
		{"missing fields", "0:/\n", "invalid cgroup entry"},
		{"missing fields after a good line", "0::/\n4:freezer\n", "invalid cgroup entry"},
		{"one field", "garbage\n", "invalid cgroup entry"},
		{"non-numeric ID", "x:freezer:/\n", "hierarchy ID is not a number"},
		{"empty ID", "::/\n", "hierarchy ID is not a number"},
		{"relative v2 path", "0::abc\n", "path is not absolute"},
		{"relative v1 path", "4:freezer:docker/abc\n", "path is not absolute"},
		{"empty path", "4:freezer:\n", "path is not absolute"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := procs.ParseCgroups(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("ParseCgroups(%q) = %#v, want an error", tt.in, got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCgroups(%q) error %q, want it to contain %q", tt.in, err, tt.want)
			}
			if !reflect.DeepEqual(got, procs.Cgroups{}) {
				t.Errorf("ParseCgroups(%q) returned %#v with its error, want the zero Cgroups", tt.in, got)
			}
		})
	}
}

func TestParseCgroupsReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := procs.ParseCgroups(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Errorf("ParseCgroups(failing reader) error %v, want %v", err, boom)
	}
}

func TestReadCgroups(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		want procs.Cgroups
	}{
		{
			pid: 1,
			want: procs.Cgroups{
				V1:            map[string]string{},
				V1Hierarchies: map[string]string{},
				Unified:       "/init.scope",
				HasUnified:    true,
			},
		},
		{
			pid: 42,
			want: procs.Cgroups{
				V1: map[string]string{
					"freezer":      "/docker/0123abcd",
					"cpu":          "/docker/0123abcd",
					"cpuacct":      "/docker/0123abcd",
					"memory":       "/docker/0123abcd",
					"net_cls":      "/docker/0123abcd",
					"net_prio":     "/docker/0123abcd",
					"name=systemd": "/docker/0123abcd",
				},
				V1Hierarchies: map[string]string{
					"freezer":      "freezer",
					"cpu":          "cpu,cpuacct",
					"cpuacct":      "cpu,cpuacct",
					"memory":       "memory",
					"net_cls":      "net_cls,net_prio",
					"net_prio":     "net_cls,net_prio",
					"name=systemd": "name=systemd",
				},
				Unified:    "/system.slice/docker-0123abcd.scope",
				HasUnified: true,
			},
		},
		{
			pid: 100,
			want: procs.Cgroups{
				V1: map[string]string{
					"memory":       "/kubepods/besteffort/pod1234/ctr",
					"cpu":          "/kubepods/besteffort/pod1234/ctr",
					"cpuacct":      "/kubepods/besteffort/pod1234/ctr",
					"freezer":      "/kubepods/besteffort/pod1234/ctr",
					"devices":      "/kubepods/besteffort/pod1234/ctr",
					"name=systemd": "/kubepods/besteffort/pod1234/ctr",
				},
				V1Hierarchies: map[string]string{
					"memory":       "memory",
					"cpu":          "cpu,cpuacct",
					"cpuacct":      "cpu,cpuacct",
					"freezer":      "freezer,devices",
					"devices":      "freezer,devices",
					"name=systemd": "name=systemd",
				},
			},
		},
		{
			pid: 4242,
			want: procs.Cgroups{
				V1:            map[string]string{},
				V1Hierarchies: map[string]string{},
				Unified:       "/../0123abcd",
				HasUnified:    true,
			},
		},
	} {
		got, err := procs.ReadCgroups(fakeProc, tt.pid)
		if err != nil {
			t.Errorf("ReadCgroups(%d): unexpected error %v", tt.pid, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ReadCgroups(%d) =\n  %#v\nwant\n  %#v", tt.pid, got, tt.want)
		}
	}
}

func TestReadCgroupsMissingProcess(t *testing.T) {
	for _, pid := range []int{2, 999999999} {
		_, err := procs.ReadCgroups(fakeProc, pid)
		if !errors.Is(err, procs.ErrNoProcess) {
			t.Errorf("ReadCgroups(%d) error %v, want ErrNoProcess", pid, err)
		}
	}
	// A directory without a cgroup file (PID 9 has a stat only) is a
	// process the proc filesystem does not show either.
	if _, err := procs.ReadCgroups(fakeProc, 9); !errors.Is(err, procs.ErrNoProcess) {
		t.Errorf("ReadCgroups(9) error %v, want ErrNoProcess", err)
	}
	// A whole proc root that does not exist.
	if _, err := procs.ReadCgroups(t.TempDir()+"/nonexistent", 1); !errors.Is(err, procs.ErrNoProcess) {
		t.Errorf("ReadCgroups(missing root, 1) error %v, want ErrNoProcess", err)
	}
}

func TestReadCgroupsMalformed(t *testing.T) {
	_, err := procs.ReadCgroups(fakeProc, 7)
	if err == nil {
		t.Fatal("ReadCgroups(7) on a malformed file: no error")
	}
	if errors.Is(err, procs.ErrNoProcess) {
		t.Errorf("ReadCgroups(7) error %v wraps ErrNoProcess, want a parse error", err)
	}
	want := `testdata/proc/7/cgroup: invalid cgroup entry "0::system.slice": path is not absolute`
	if err.Error() != want {
		t.Errorf("ReadCgroups(7) error\n  %q\nwant\n  %q", err, want)
	}
}

func TestParsePIDs(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want []int
	}{
		{"empty", "", nil},
		{"blank lines only", "\n\n  \n", nil},
		{"one", "1\n", []int{1}},
		{"several in order", "42\n7\n100000\n", []int{42, 7, 100000}},
		{"no trailing newline", "3\n4", []int{3, 4}},
		{"blank lines and spaces", "\n 12 \n\n\t34\n", []int{12, 34}},
		// A PID from another PID namespace reads as 0 in cgroup.procs.
		{"zero", "0\n5\n", []int{0, 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := procs.ParsePIDs(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("ParsePIDs(%q): unexpected error %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePIDs(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParsePIDsErrors(t *testing.T) {
	for _, in := range []string{
		"abc\n",
		"1\nabc\n",
		"-1\n",
		"1 2\n",
		"1.5\n",
		"0x10\n",
		"99999999999999999999999\n",
	} {
		got, err := procs.ParsePIDs(strings.NewReader(in))
		if err == nil {
			t.Errorf("ParsePIDs(%q) = %v, want an error", in, got)
			continue
		}
		if !strings.HasPrefix(err.Error(), "invalid PID ") {
			t.Errorf("ParsePIDs(%q) error %q, want it to start with %q", in, err, "invalid PID ")
		}
		if got != nil {
			t.Errorf("ParsePIDs(%q) returned %v with its error, want nil", in, got)
		}
	}
	boom := errors.New("boom")
	if _, err := procs.ParsePIDs(io.MultiReader(strings.NewReader("1\n"), iotest.ErrReader(boom))); !errors.Is(err, boom) {
		t.Errorf("ParsePIDs(failing reader) error %v, want %v", err, boom)
	}
}

func TestIsAncestor(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"/", "/", true},
		{"/", "/a", true},
		{"/", "/a/b/c", true},
		{"/a", "/a", true},
		{"/a", "/a/b", true},
		{"/a", "/a/b/c", true},
		{"/a/", "/a/b", true},
		{"/a", "/a/b/", true},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a", false},
		{"/a", "/", false},
		{"/a", "/ab", false},
		{"/a", "/b", false},
		{"/a/b", "/a/bc", false},
		{"/kubepods/pod1", "/kubepods/pod10/ctr", false},
		// Paths outside the reader's namespace are below nothing inside
		// it, not even "/", and contain nothing.
		{"/", "/../x", false},
		{"/", "/..", false},
		{"/x", "/../x", false},
		{"/../x", "/../x", false},
		{"/../x", "/../x/y", false},
		{"/..", "/", false},
		{"/..", "/a", false},
		// "..x" is an ordinary cgroup name.
		{"/", "/..x", true},
		{"/..x", "/..x/y", true},
	} {
		if got := procs.IsAncestor(tt.a, tt.b); got != tt.want {
			t.Errorf("IsAncestor(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestOutside(t *testing.T) {
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"/..", true},
		{"/../", true},
		{"/../x", true},
		{"/../../x/y", true},
		{"/", false},
		{"", false},
		{"/x", false},
		{"/..x", false},
		{"/x/..", false},
		{"/a/../b", false},
		{"/...", false},
	} {
		if got := procs.Outside(tt.path); got != tt.want {
			t.Errorf("Outside(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
