//go:build linux

package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRel(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"/", "."},
		{"", "."},
		{".", "."},
		{"//", "."},
		{"/.", "."},
		{"a", "a"},
		{"a/b", "a/b"},
		{"/a/b", "a/b"},
		{"/a/b/", "a/b"},
		{"a//b", "a/b"},
		{"./a/./b", "a/b"},
		{"/kubepods/pod1/ctr/cgroup.procs", "kubepods/pod1/ctr/cgroup.procs"},
		{"/cgfreeze", "cgfreeze"},
		// Names that merely start with dots are ordinary names.
		{"/...", "..."},
		{"/..a/b..", "..a/b.."},
	} {
		got, err := rel(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("rel(%q) = %q, %v; want %q, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestRelRefusesDotDot(t *testing.T) {
	for _, in := range []string{
		"..",
		"/..",
		"../x",
		"/../x",
		"a/..",
		"a/../b",
		"/a/b/../../..",
		"/a/../a",
		"a/b/..",
		"a/../../etc/passwd",
		"/../../proc/self",
	} {
		got, err := rel(in)
		if !errors.Is(err, ErrOutside) {
			t.Errorf("rel(%q) = %q, %v; want ErrOutside", in, got, err)
		}
		if got != "" {
			t.Errorf("rel(%q) returned %q with its error, want \"\"", in, got)
		}
	}
}

// fakeRootDo runs fn on a Root over a plain directory, without hooks: the
// files and directories are the directory's own.
func fakeRootDo(t *testing.T, fn func(dir string, r *Root)) {
	t.Helper()
	dir := t.TempDir()
	m, err := Open(Spec{Version: 2}, Options{Fake: NewFake(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Close() }()
	if err := m.Do(func(r *Root) error { fn(dir, r); return nil }); err != nil {
		t.Fatal(err)
	}
}

// Children lists the directories of a cgroup, not its files, not "." or
// "..", across more than one getdents(2) buffer; ChildrenAt lists them
// through a descriptor held open, again each time.
func TestChildren(t *testing.T) {
	fakeRootDo(t, func(dir string, r *Root) {
		var want []string
		for i := range 300 {
			name := fmt.Sprintf("child-%03d-%s", i, strings.Repeat("x", 40))
			if err := os.MkdirAll(filepath.Join(dir, "cg", name), 0o755); err != nil {
				t.Fatal(err)
			}
			want = append(want, name)
			if err := os.WriteFile(filepath.Join(dir, "cg", fmt.Sprintf("file.%03d", i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("child-000", filepath.Join(dir, "cg", "link")); err != nil {
			t.Fatal(err)
		}
		got, err := r.Children("/cg")
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Children(/cg) = %d names, %v; want the %d directories", len(got), err, len(want))
		}
		f, err := r.Open("/cg", unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := range 2 {
			got, err := r.ChildrenAt(f, "/cg")
			slices.Sort(got)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("ChildrenAt(/cg), read %d: %d names, %v; want the %d directories", i+1, len(got), err, len(want))
			}
		}
		if got, err := r.Children("/cg/child-000-" + strings.Repeat("x", 40)); err != nil || len(got) != 0 {
			t.Errorf("Children of a leaf = %q, %v; want none", got, err)
		}
		if _, err := r.Children("/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Children(/missing) = %v, want ErrNotExist", err)
		}
		if _, err := r.Children("/cg/file.000"); !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("Children of a file = %v, want ENOTDIR", err)
		}
	})
}

// ReadFile reads a file to its end, whatever its length against its
// buffers, without the white space around it; WriteFile's errors name the
// value and the path.
func TestReadWriteFile(t *testing.T) {
	fakeRootDo(t, func(dir string, r *Root) {
		for _, n := range []int{0, 1, 511, 512, 513, 4096, 70000} {
			content := strings.Repeat("a", n)
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte(" "+content+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, err := r.ReadFile("/f"); err != nil || got != content {
				t.Errorf("ReadFile of %d bytes = %d bytes, %v", n, len(got), err)
			}
		}
		if _, err := r.ReadFile("/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile(/missing) = %v, want ErrNotExist", err)
		}
		if _, err := r.ReadFile("/../x"); !errors.Is(err, ErrOutside) {
			t.Errorf("ReadFile(/../x) = %v, want ErrOutside", err)
		}
		if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadFile("/d"); !errors.Is(err, unix.EISDIR) {
			t.Errorf("ReadFile of a directory = %v, want EISDIR", err)
		}
	})
}
