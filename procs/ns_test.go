package procs_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/procs"
)

func TestInitNamespaceConstants(t *testing.T) {
	// include/linux/proc_ns.h: PROC_CGROUP_INIT_INO, PROC_PID_INIT_INO.
	if procs.InitCgroupNamespace != 4026531835 {
		t.Errorf("InitCgroupNamespace = %d, want 4026531835", procs.InitCgroupNamespace)
	}
	if procs.InitPIDNamespace != 4026531836 {
		t.Errorf("InitPIDNamespace = %d, want 4026531836", procs.InitPIDNamespace)
	}
}

func TestNamespace(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		kind string
		want uint64
	}{
		{1, "cgroup", procs.InitCgroupNamespace},
		{1, "pid", procs.InitPIDNamespace},
		{42, "cgroup", 4026532451},
		{42, "pid", 4026532452},
		{100, "cgroup", procs.InitCgroupNamespace},
		{4242, "cgroup", 4026532999},
	} {
		got, err := procs.Namespace(fakeProc, tt.pid, tt.kind)
		if err != nil {
			t.Errorf("Namespace(%d, %q): unexpected error %v", tt.pid, tt.kind, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Namespace(%d, %q) = %d, want %d", tt.pid, tt.kind, got, tt.want)
		}
	}
}

func TestNamespaceMissing(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		kind string
	}{
		{2, "cgroup"},      // no such process
		{999999999, "pid"}, // no such process
	} {
		if _, err := procs.Namespace(fakeProc, tt.pid, tt.kind); !errors.Is(err, procs.ErrNoProcess) {
			t.Errorf("Namespace(%d, %q) error %v, want ErrNoProcess", tt.pid, tt.kind, err)
		}
	}
}

// A process that exists without the link runs on a kernel without that kind
// of namespace: an error, but not a missing process.
func TestNamespaceLinkMissing(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		kind string
	}{
		{100, "pid"},  // process without that link
		{7, "cgroup"}, // process without an ns directory
	} {
		_, err := procs.Namespace(fakeProc, tt.pid, tt.kind)
		if err == nil || errors.Is(err, procs.ErrNoProcess) {
			t.Errorf("Namespace(%d, %q) error %v, want an error that is not ErrNoProcess", tt.pid, tt.kind, err)
		}
		if err != nil && !strings.Contains(err.Error(), "namespace "+tt.kind) {
			t.Errorf("Namespace(%d, %q) error %q does not name the namespace", tt.pid, tt.kind, err)
		}
	}
}

func TestNamespaceMalformed(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		kind string
		want string
	}{
		{8, "cgroup", `unexpected cgroup namespace link "garbage"`},
		{8, "pid", `invalid syntax`},
		// A link of another kind than asked for.
		{8, "mnt", `unexpected mnt namespace link "cgroup:[4026531835]"`},
	} {
		got, err := procs.Namespace(fakeProc, tt.pid, tt.kind)
		if err == nil {
			t.Errorf("Namespace(%d, %q) = %d, want an error", tt.pid, tt.kind, got)
			continue
		}
		if errors.Is(err, procs.ErrNoProcess) {
			t.Errorf("Namespace(%d, %q) error %v wraps ErrNoProcess, want a parse error", tt.pid, tt.kind, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Namespace(%d, %q) error %q, want it to contain %q", tt.pid, tt.kind, err, tt.want)
		}
	}
}

// TestNamespaceLinks builds each link in a temporary proc tree, so that the
// link targets need not be committed.
func TestNamespaceLinks(t *testing.T) {
	for _, tt := range []struct {
		link    string
		want    uint64
		wantErr bool
	}{
		{"cgroup:[4026531835]", 4026531835, false},
		{"cgroup:[1]", 1, false},
		{"cgroup:[18446744073709551615]", 18446744073709551615, false},
		{"cgroup:[]", 0, true},
		{"cgroup:[-1]", 0, true},
		{"cgroup:[12x]", 0, true},
		{"cgroup:[18446744073709551616]", 0, true},
		{"cgroup:4026531835", 0, true},
		{"cgroup:[4026531835", 0, true},
		{"cgroup[4026531835]", 0, true},
		{"cgroup:[ 4026531835]", 0, true},
		{"pid:[4026531835]", 0, true},
		{"cgroupx:[4026531835]", 0, true},
		{"4026531835", 0, true},
		{"/proc/1/ns/cgroup", 0, true},
	} {
		t.Run(tt.link, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "5", "ns")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tt.link, filepath.Join(dir, "cgroup")); err != nil {
				t.Fatal(err)
			}
			got, err := procs.Namespace(root, 5, "cgroup")
			if tt.wantErr {
				if err == nil {
					t.Errorf("Namespace(link %q) = %d, want an error", tt.link, got)
				}
				if errors.Is(err, procs.ErrNoProcess) {
					t.Errorf("Namespace(link %q) error %v wraps ErrNoProcess", tt.link, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Namespace(link %q) = %d, %v; want %d, nil", tt.link, got, err, tt.want)
			}
		})
	}
}

func TestNamespaceNotALink(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "5", "ns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte("cgroup:[1]"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := procs.Namespace(root, 5, "cgroup")
	if err == nil || errors.Is(err, procs.ErrNoProcess) {
		t.Errorf("Namespace(regular file) error %v, want an error that is not ErrNoProcess", err)
	}
}

func TestExists(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		want bool
	}{
		{1, true},
		{42, true},
		{9, true},
		{2, false},
		{999999999, false},
	} {
		if got := procs.Exists(fakeProc, tt.pid); got != tt.want {
			t.Errorf("Exists(%d) = %v, want %v", tt.pid, got, tt.want)
		}
	}
}

func TestStartTime(t *testing.T) {
	for _, tt := range []struct {
		pid  int
		want uint64
	}{
		{1, 12},
		// comm "x) 1 2 3 4 5": spaces, digits and ')' in the name.
		{42, 987654},
		{100, 5000000},
	} {
		got, err := procs.StartTime(fakeProc, tt.pid)
		if err != nil {
			t.Errorf("StartTime(%d): unexpected error %v", tt.pid, err)
			continue
		}
		if got != tt.want {
			t.Errorf("StartTime(%d) = %d, want %d", tt.pid, got, tt.want)
		}
	}
}

func TestStartTimeMissing(t *testing.T) {
	for _, pid := range []int{2, 7, 999999999} {
		if _, err := procs.StartTime(fakeProc, pid); !errors.Is(err, procs.ErrNoProcess) {
			t.Errorf("StartTime(%d) error %v, want ErrNoProcess", pid, err)
		}
	}
}

func TestStartTimeMalformed(t *testing.T) {
	// The truncated stat in the committed tree.
	if got, err := procs.StartTime(fakeProc, 9); err == nil || errors.Is(err, procs.ErrNoProcess) {
		t.Errorf("StartTime(9) = %d, %v; want a parse error", got, err)
	}

	tail := func(start string) string {
		// Fields 3 to 21, then 22 (start time) and a few more.
		return " S 1 5 5 0 -1 4194560 10 0 0 0 1 1 0 0 20 0 1 0 " + start + " 1000 10 18446744073709551615\n"
	}
	for _, tt := range []struct {
		name, stat string
		want       uint64
		wantErr    bool
	}{
		{"plain", "5 (sh)" + tail("777"), 777, false},
		{"spaces", "5 (my prog)" + tail("778"), 778, false},
		{"parens", "5 ((sd-pam))" + tail("779"), 779, false},
		{"close paren and numbers", "5 (a) 1 2) 3 4)" + tail("780"), 780, false},
		{"empty comm", "5 ()" + tail("781"), 781, false},
		{"exactly 22 fields", "5 (sh) S 1 5 5 0 -1 4194560 10 0 0 0 1 1 0 0 20 0 1 0 782", 782, false},
		{"no paren", "5 sh S 1 5 5 0 -1 4194560 10 0 0 0 1 1 0 0 20 0 1 0 783 1", 0, true},
		{"21 fields", "5 (sh) S 1 5 5 0 -1 4194560 10 0 0 0 1 1 0 0 20 0 1 0", 0, true},
		{"empty", "", 0, true},
		{"non-numeric start", "5 (sh)" + tail("soon"), 0, true},
		{"negative start", "5 (sh)" + tail("-1"), 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "5"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "5", "stat"), []byte(tt.stat), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := procs.StartTime(root, 5)
			if tt.wantErr {
				if err == nil {
					t.Errorf("StartTime(%q) = %d, want an error", tt.stat, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("StartTime(%q) = %d, %v; want %d, nil", tt.stat, got, err, tt.want)
			}
		})
	}
}

// TestStartTimeSelf checks the parser against the real /proc/self/stat,
// which only needs /proc (no privilege, no cgroups).
func TestStartTimeSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	got, err := procs.StartTime("/proc", pid)
	if err != nil {
		t.Fatalf("StartTime(/proc, self): %v", err)
	}
	again, err := procs.StartTime("/proc", pid)
	if err != nil || again != got {
		t.Errorf("StartTime(/proc, %d) = %d then %d, %v; want the same value twice", pid, got, again, err)
	}
	if got == 0 {
		t.Errorf("StartTime(/proc, %d) = 0, want a positive tick count", pid)
	}
}

// TestDead: the state field of stat, after a command name that holds
// spaces and parentheses; a process without a readable stat is not dead.
func TestDead(t *testing.T) {
	root := t.TempDir()
	for pid, stat := range map[int]string{
		1: "1 (sleep) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0",
		2: "2 (a) Z) (b) Z 1 2 2 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0",
		3: "3 (x) X 1 3 3",
		4: "4 (y) R 1 4 4",
		5: "malformed",
	} {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for pid, want := range map[int]bool{1: false, 2: true, 3: true, 4: false, 5: false, 6: false} {
		if got := procs.Dead(root, pid); got != want {
			t.Errorf("Dead(%d) = %v, want %v", pid, got, want)
		}
	}
}

// TestDeadZombie makes a real zombie: sleep, exec'd by a shell that
// started a child, never reaps it.
func TestDeadZombie(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sh", "-c", "sleep 0 & echo $!; exec sleep 10")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var zombie int
	if _, err := fmt.Fscan(out, &zombie); err != nil {
		t.Fatal(err)
	}
	const limit = 5 * time.Second
	deadline := time.Now().Add(limit)
	for !procs.Dead("/proc", zombie) {
		if time.Now().After(deadline) {
			t.Fatalf("PID %d is not a zombie after %v", zombie, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if procs.Dead("/proc", cmd.Process.Pid) {
		t.Errorf("the running sleep (PID %d) is called dead", cmd.Process.Pid)
	}
}
