//go:build linux

package mount

import (
	"errors"
	"testing"
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
