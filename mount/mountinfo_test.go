//go:build linux

package mount

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSuperOptions(t *testing.T) {
	for _, tt := range []struct {
		file, fstype string
		want         []string
		found        bool
	}{
		// Hybrid host: cgroup2 at /sys/fs/cgroup/unified, v1 controllers
		// beside it.
		{"mountinfo-hybrid", "cgroup2", []string{"nsdelegate"}, true},
		{"mountinfo-hybrid", "cgroup", []string{"xattr", "name=systemd"}, true},
		{"mountinfo-hybrid", "tmpfs", []string{"mode=755"}, true},
		// Pure v2 (systemd): the flags that a bare mount would reset.
		{"mountinfo-v2", "cgroup2", []string{"nsdelegate", "memory_recursiveprot"}, true},
		{"mountinfo-v2", "cgroup", nil, false},
		// v1 only: no cgroup2 at all.
		{"mountinfo-v1", "cgroup2", nil, false},
		{"mountinfo-v1", "cgroup", []string{"seclabel", "xattr", "release_agent=/usr/lib/systemd/systemd-cgroups-agent", "name=systemd"}, true},
		// A container: no optional fields before " - ", source "cgroup", "ro".
		{"mountinfo-container", "cgroup2", []string{"nsdelegate", "memory_recursiveprot"}, true},
		{"mountinfo-container", "cgroup", nil, false},
		{"mountinfo-container", "ext4", nil, true},
		{"mountinfo-container", "overlay", []string{
			"lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF",
			"upperdir=/var/lib/docker/overlay2/123/diff",
			"workdir=/var/lib/docker/overlay2/123/work",
		}, true},
	} {
		t.Run(tt.file+"/"+tt.fstype, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, found, err := SuperOptions(strings.NewReader(string(b)), tt.fstype)
			if err != nil {
				t.Fatalf("SuperOptions(%s, %q): unexpected error %v", tt.file, tt.fstype, err)
			}
			if found != tt.found || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SuperOptions(%s, %q) = %#v, %v; want %#v, %v", tt.file, tt.fstype, got, found, tt.want, tt.found)
			}
		})
	}
}

func TestSuperOptionsLines(t *testing.T) {
	for _, tt := range []struct {
		name  string
		in    string
		want  []string
		found bool
	}{
		{"empty", "", nil, false},
		{"first of two", "1 0 0:1 / /a rw - cgroup2 cgroup2 rw,nsdelegate\n" +
			"2 0 0:2 / /b rw - cgroup2 cgroup2 rw,memory_localevents\n", []string{"nsdelegate"}, true},
		{"ro and rw dropped", "1 0 0:1 / /a rw - cgroup2 cgroup2 ro,nsdelegate,rw\n", []string{"nsdelegate"}, true},
		{"only rw", "1 0 0:1 / /a rw - cgroup2 cgroup2 rw\n", nil, true},
		{"several optional fields", "31 30 0:25 / /sys/fs/cgroup/unified rw,relatime shared:10 master:3 propagate_from:2 - cgroup2 cgroup2 rw,nsdelegate\n", []string{"nsdelegate"}, true},
		{"no separator", "31 30 0:25 / /sys/fs/cgroup rw,relatime cgroup2 cgroup2 rw,nsdelegate\n", nil, false},
		{"too few fields after the separator", "31 30 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2\n" +
			"32 30 0:26 / /x rw - cgroup2 cgroup2 rw,memory_recursiveprot\n", []string{"memory_recursiveprot"}, true},
		{"fstype must match exactly", "1 0 0:1 / /a rw - cgroup2x cgroup2 rw,nsdelegate\n" +
			"2 0 0:2 / /b rw - xcgroup2 cgroup2 rw,nsdelegate\n", nil, false},
		{"source named cgroup2 is not the type", "1 0 0:1 / /a rw - tmpfs cgroup2 rw,size=4k\n", nil, false},
		{"mount point that looks like a type", `1 0 0:1 / /mnt/\040-\040cgroup2 rw - tmpfs tmpfs rw` + "\n", nil, false},
		{"no trailing newline", "1 0 0:1 / /a rw - cgroup2 cgroup2 rw,nsdelegate", []string{"nsdelegate"}, true},
		{"empty options in the list", "1 0 0:1 / /a rw - cgroup2 cgroup2 rw,,nsdelegate,\n", []string{"nsdelegate"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := SuperOptions(strings.NewReader(tt.in), "cgroup2")
			if err != nil {
				t.Fatalf("SuperOptions(%q): unexpected error %v", tt.in, err)
			}
			if found != tt.found || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SuperOptions(%q) = %#v, %v; want %#v, %v", tt.in, got, found, tt.want, tt.found)
			}
		})
	}
}

func TestSuperOptionsLongLines(t *testing.T) {
	// Overlay mounts with many layers give lines beyond bufio's 64 KiB
	// default; a cgroup2 line after one must still be found.
	long := "1 0 0:1 / / rw - overlay overlay rw,lowerdir=" + strings.Repeat("/l/X:", 30000) + "/l/Y\n"
	in := long + "2 1 0:2 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
	got, found, err := SuperOptions(strings.NewReader(in), "cgroup2")
	if err != nil || !found || !reflect.DeepEqual(got, []string{"nsdelegate"}) {
		t.Errorf("SuperOptions(after a %d-byte line) = %#v, %v, %v; want [nsdelegate], true, nil", len(long), got, found, err)
	}

	// A line beyond the 1 MiB limit is an error, not "not found".
	huge := "1 0 0:1 / / rw - overlay overlay rw,lowerdir=" + strings.Repeat("x", 1<<20) + "\n"
	_, found, err = SuperOptions(strings.NewReader(huge+"2 1 0:2 / /c rw - cgroup2 cgroup2 rw\n"), "cgroup2")
	if !errors.Is(err, bufio.ErrTooLong) || found {
		t.Errorf("SuperOptions(after a %d-byte line) = found %v, error %v; want false, %v", len(huge), found, err, bufio.ErrTooLong)
	}
}

func TestSuperOptionsReadError(t *testing.T) {
	boom := errors.New("boom")
	_, found, err := SuperOptions(iotest.ErrReader(boom), "cgroup2")
	if !errors.Is(err, boom) || found {
		t.Errorf("SuperOptions(failing reader) = found %v, error %v; want false, %v", found, err, boom)
	}
	// A match before the read error is returned.
	r := iotest.TimeoutReader(strings.NewReader("1 0 0:1 / /a rw - cgroup2 cgroup2 rw,nsdelegate\n"))
	got, found, err := SuperOptions(r, "cgroup2")
	if err != nil || !found || !reflect.DeepEqual(got, []string{"nsdelegate"}) {
		t.Errorf("SuperOptions(match, then error) = %#v, %v, %v; want [nsdelegate], true, nil", got, found, err)
	}
}

func TestSuperOptionsFromFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	td := func(name string) string { return filepath.Join("testdata", name) }
	for _, tt := range []struct {
		name  string
		paths []string
		want  []string
		found bool
	}{
		{"none", nil, nil, false},
		{"missing only", []string{missing}, nil, false},
		{"skips missing", []string{missing, td("mountinfo-v2")}, []string{"nsdelegate", "memory_recursiveprot"}, true},
		{"skips files without cgroup2", []string{td("mountinfo-v1"), missing, td("mountinfo-hybrid")}, []string{"nsdelegate"}, true},
		{"first match wins", []string{td("mountinfo-hybrid"), td("mountinfo-v2")}, []string{"nsdelegate"}, true},
		{"no file has it", []string{td("mountinfo-v1"), missing}, nil, false},
		{"a directory is skipped", []string{"testdata", td("mountinfo-v2")}, []string{"nsdelegate", "memory_recursiveprot"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, found := SuperOptionsFromFiles("cgroup2", tt.paths...)
			if found != tt.found || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SuperOptionsFromFiles(%q) = %#v, %v; want %#v, %v", tt.paths, got, found, tt.want, tt.found)
			}
		})
	}
}

func TestSpecString(t *testing.T) {
	for _, tt := range []struct {
		spec Spec
		want string
	}{
		{Spec{Version: 1, Controllers: []string{"freezer"}}, "cgroup (freezer)"},
		{Spec{Version: 1, Controllers: []string{"cpu", "cpuacct"}, Options: []string{"ignored"}}, "cgroup (cpu,cpuacct)"},
		{Spec{Version: 1, Controllers: []string{"name=systemd"}}, "cgroup (name=systemd)"},
		{Spec{Version: 2}, "cgroup2"},
		{Spec{Version: 2, Options: []string{"nsdelegate", "memory_recursiveprot"}, Controllers: []string{"ignored"}}, "cgroup2 (nsdelegate,memory_recursiveprot)"},
	} {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestRootMounts(t *testing.T) {
	for _, tt := range []struct {
		file, fstype string
		want         []string
	}{
		{"mountinfo-hybrid", "cgroup2", []string{"/sys/fs/cgroup/unified"}},
		{"mountinfo-v2", "cgroup2", []string{"/sys/fs/cgroup"}},
		{"mountinfo-v1", "cgroup2", nil},
		{"mountinfo-container", "cgroup2", []string{"/sys/fs/cgroup"}},
	} {
		got := RootMountsFromFile(tt.fstype, filepath.Join("testdata", tt.file))
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("RootMountsFromFile(%q, %s) = %q, want %q", tt.fstype, tt.file, got, tt.want)
		}
	}
	// Only the root of the file system counts, and escapes are undone.
	in := "40 30 0:25 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n" +
		"41 30 0:25 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n" +
		"42 30 0:26 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n"
	got, err := RootMounts(strings.NewReader(in), "cgroup2")
	if err != nil || !reflect.DeepEqual(got, []string{"/mnt/my cgroup"}) {
		t.Errorf("RootMounts = %q, %v; want [/mnt/my cgroup]", got, err)
	}
	if got := RootMountsFromFile("cgroup2", filepath.Join("testdata", "missing")); got != nil {
		t.Errorf("RootMountsFromFile(missing) = %q, want none", got)
	}
}

// HierarchyFromFile reads a file once and shows what SuperOptions and
// RootMounts show of it, for every file of testdata and the live one.
func TestHierarchyFromFile(t *testing.T) {
	files := []string{"/proc/self/mountinfo"}
	for _, name := range []string{"mountinfo-container", "mountinfo-hybrid", "mountinfo-v1", "mountinfo-v2"} {
		files = append(files, filepath.Join("testdata", name))
	}
	for _, file := range files {
		for _, fstype := range []string{"cgroup2", "cgroup", "proc"} {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			opts, found, err := SuperOptions(strings.NewReader(string(b)), fstype)
			if err != nil {
				t.Fatal(err)
			}
			roots, err := RootMounts(strings.NewReader(string(b)), fstype)
			if err != nil {
				t.Fatal(err)
			}
			got := HierarchyFromFile(fstype, file)
			want := Hierarchy{Options: opts, Found: found, Roots: roots}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("HierarchyFromFile(%q, %s) = %#v, want %#v", fstype, file, got, want)
			}
		}
	}
	if got := HierarchyFromFile("cgroup2", filepath.Join(t.TempDir(), "missing")); !reflect.DeepEqual(got, Hierarchy{}) {
		t.Errorf("HierarchyFromFile(missing) = %#v, want nothing", got)
	}
}

// A mountinfo file longer than one read, with a line too long for
// mountinfo after the first cgroup2 mount: the options stand, the roots do
// not (as SuperOptions and RootMounts have it).
func TestHierarchyFromFileLong(t *testing.T) {
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, "%d 1 0:%d / /mnt/m%d rw - tmpfs tmpfs rw\n", 100+i, 100+i, i)
	}
	b.WriteString("30 1 0:25 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
	file := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	want := Hierarchy{Options: []string{"nsdelegate"}, Found: true, Roots: []string{"/sys/fs/cgroup"}}
	if got := HierarchyFromFile("cgroup2", file); !reflect.DeepEqual(got, want) {
		t.Errorf("HierarchyFromFile(%d bytes) = %#v, want %#v", b.Len(), got, want)
	}
	b.WriteString("31 1 0:26 / /x rw - tmpfs tmpfs " + strings.Repeat("o", maxMountinfoLine) + "\n")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	want.Roots = nil
	if got := HierarchyFromFile("cgroup2", file); !reflect.DeepEqual(got, want) {
		t.Errorf("HierarchyFromFile(a too long line after the cgroup2 mount) = %#v, want %#v", got, want)
	}
}
