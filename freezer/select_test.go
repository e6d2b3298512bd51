//go:build linux

package freezer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgfreeze/cgfreeze/procs"
)

const (
	idPause = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idApp   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	idSide  = "0123456789abcdef0123456789abcdef0123456789abcdef00000000000000ff"

	podPIDNS  = "pid:[4026532100]"
	hostPIDNS = "pid:[4026531836]" // procs.InitPIDNamespace
)

// agentView is what an ephemeral container sees on cgroup v2 in a pod
// that shares its PID namespace: the pause container as PID 1, an app with
// a process in a sub-cgroup (lower PID) and one in its own cgroup, a
// sidecar, and cgfreeze itself at the root of its own cgroup namespace.
func agentView(selfPIDNS string) map[int]fakeProcess {
	return map[int]fakeProcess{
		1:           {cgroup: "0::/../" + idPause + "\n", cmdline: "/pause\x00"},
		5:           {cgroup: "0::/../" + idApp + "/worker\n", cmdline: "worker\x00"},
		7:           {cgroup: "0::/../" + idApp + "\n", cmdline: "/bin/app\x00--serve\x00"},
		9:           {cgroup: "0::/../" + idSide + "\n", cmdline: "envoy\x00"},
		os.Getpid(): {cgroup: "0::/\n", pidNS: selfPIDNS, cmdline: "/cgfreeze\x00"},
	}
}

func selectOpts(root string) Options {
	// No /sys/fs/cgroup there: the version comes from the cgroup lines.
	return Options{PID: 1, PIDDefaulted: true, ProcRoot: root, SysCgroup: filepath.Join(root, "no-sys")}
}

func TestCheckWorkloadSharedPod(t *testing.T) {
	root := fakeProcTree(t, agentView(podPIDNS))
	_, err := selectPID(selectOpts(root))
	if !errors.Is(err, ErrUnsafeTarget) {
		t.Fatalf("selectPID(default, shared pod) = %v, want ErrUnsafeTarget", err)
	}
	for _, want := range []string{
		"PID 1 (cgroup /../" + idPause + ") is not the only workload",
		"--container-id",
		"--pid 1",
		"PID 1's:\n  - /../" + idPause + " (id " + idPause + `): 1 process, PID 1 "/pause"`,
		"/../" + idApp + " (id " + idApp + `): 2 processes, PID 5 "worker"`,
		"/../" + idSide + " (id " + idSide + ")",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "cgfreeze") {
		t.Errorf("error %q lists cgfreeze's own processes", err)
	}
}

// TestCheckWorkloadSingle is plain kubectl debug --target: PID 1 is the
// app (held in the child of a subtree freeze), its other processes are in
// sub-cgroups, cgfreeze is beside it. Nothing to refuse.
func TestCheckWorkloadSingle(t *testing.T) {
	root := fakeProcTree(t, map[int]fakeProcess{
		1:           {cgroup: "0::/../" + idApp + "/cgfreeze\n"},
		5:           {cgroup: "0::/../" + idApp + "/worker\n"},
		os.Getpid(): {cgroup: "0::/\n", pidNS: podPIDNS},
	})
	if pid, err := selectPID(selectOpts(root)); err != nil || pid != 1 {
		t.Errorf("selectPID(default, one container) = %d, %v; want 1, nil", pid, err)
	}
	// An explicit --pid is never checked.
	root = fakeProcTree(t, agentView(podPIDNS))
	opts := selectOpts(root)
	opts.PIDDefaulted = false
	if pid, err := selectPID(opts); err != nil || pid != 1 {
		t.Errorf("selectPID(--pid 1, shared pod) = %d, %v; want 1, nil", pid, err)
	}
}

// TestCheckWorkloadV1HostPaths: on v1 without cgroup namespaces the agent
// sees full paths; its own pod's cgroup (an ancestor of its own) and the
// root hold no other container's workload.
func TestCheckWorkloadV1HostPaths(t *testing.T) {
	pod := "/kubepods/besteffort/pod1234"
	root := fakeProcTree(t, map[int]fakeProcess{
		1:           {cgroup: "4:freezer:" + pod + "/" + idApp + "\n"},
		8:           {cgroup: "4:freezer:" + pod + "\n"},
		9:           {cgroup: "4:freezer:/\n"},
		os.Getpid(): {cgroup: "4:freezer:" + pod + "/" + idSide + "\n", pidNS: podPIDNS},
	})
	if pid, err := selectPID(selectOpts(root)); err != nil || pid != 1 {
		t.Errorf("selectPID(default, v1) = %d, %v; want 1, nil", pid, err)
	}
}

// TestCheckWorkloadHost: in the host's PID namespace the host-init refusal
// speaks instead.
func TestCheckWorkloadHost(t *testing.T) {
	root := fakeProcTree(t, agentView(hostPIDNS))
	if pid, err := selectPID(selectOpts(root)); err != nil || pid != 1 {
		t.Errorf("selectPID(default, host PID namespace) = %d, %v; want 1, nil", pid, err)
	}
}

func TestCheckWorkloadMissingPID1(t *testing.T) {
	root := fakeProcTree(t, map[int]fakeProcess{os.Getpid(): {cgroup: "0::/\n", pidNS: podPIDNS}})
	_, err := selectPID(selectOpts(root))
	if !errors.Is(err, ErrTargetNotFound) || !strings.Contains(err.Error(), "process 1 does not exist in "+root) {
		t.Errorf("selectPID(default, no PID 1) = %v, want ErrTargetNotFound naming process 1", err)
	}
}

func TestSelectContainer(t *testing.T) {
	root := fakeProcTree(t, agentView(podPIDNS))
	for _, tt := range []struct {
		id   string
		pid  int
		err  error
		want []string
	}{
		// The process in the container's own cgroup, not the lower PID in
		// its sub-cgroup.
		{id: idApp, pid: 7},
		{id: "containerd://" + idApp[:52], pid: 7},
		{id: "AAAA", pid: 1},
		{id: "0123", err: ErrAmbiguousContainer, want: []string{`"0123" matches 2 containers`, idApp, idSide}},
		{id: "beef", err: ErrTargetNotFound, want: []string{`no container with ID "beef" among the processes in ` + root + " (cgroup v2)", idPause, idApp, idSide}},
	} {
		opts := selectOpts(root)
		opts.PIDDefaulted, opts.PID, opts.ContainerID = false, 0, tt.id
		pid, err := selectPID(opts)
		if tt.err == nil {
			if err != nil || pid != tt.pid {
				t.Errorf("selectPID(--container-id %s) = %d, %v; want %d", tt.id, pid, err, tt.pid)
			}
			continue
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("selectPID(--container-id %s) = %d, %v; want %v", tt.id, pid, err, tt.err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("selectPID(--container-id %s) error %q lacks %q", tt.id, err, w)
			}
		}
		if strings.Contains(err.Error(), "/cgfreeze") {
			t.Errorf("selectPID(--container-id %s) error %q lists cgfreeze's own group", tt.id, err)
		}
	}
}

// TestSelectContainerFrozen: while a subtree freeze holds the container,
// its processes are in the cgfreeze child; one of them is picked (Resolve
// then takes the child's parent), not one of a sub-cgroup.
func TestSelectContainerFrozen(t *testing.T) {
	root := fakeProcTree(t, map[int]fakeProcess{
		3:           {cgroup: "0::/../" + idApp + "/worker\n"},
		4:           {cgroup: "0::/../" + idApp + "/cgfreeze\n"},
		os.Getpid(): {cgroup: "0::/\n", pidNS: podPIDNS},
	})
	opts := selectOpts(root)
	opts.PIDDefaulted, opts.PID, opts.ContainerID = false, 0, idApp[:12]
	if pid, err := selectPID(opts); err != nil || pid != 4 {
		t.Errorf("selectPID(--container-id, frozen) = %d, %v; want 4", pid, err)
	}
}

// TestOthersLeft: the cheap step of the workload check reads only the
// processes outside the target's tree; cgfreeze's own and processes gone
// meanwhile are nobody's.
func TestOthersLeft(t *testing.T) {
	root := fakeProcTree(t, agentView(podPIDNS))
	opts := selectOpts(root)
	listed, err := procs.ListPIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 5 {
		t.Fatalf("ListPIDs(%s) = %v, want 5 processes", root, listed)
	}
	// PID 1 is the pause container: the app and the sidecar are left.
	if others, err := othersLeft(opts, 2, listed, map[int]bool{1: true}); err != nil || !others {
		t.Errorf("othersLeft(shared pod) = %v, %v; want true", others, err)
	}
	// Everything but cgfreeze in the target's tree, and a PID that exited
	// after the listing: nothing left.
	tree := map[int]bool{1: true, 5: true, 7: true, 9: true}
	if others, err := othersLeft(opts, 2, append(listed, 424242), tree); err != nil || others {
		t.Errorf("othersLeft(one container) = %v, %v; want false", others, err)
	}
}

// TestCheckWorkloadZombies is kubectl debug's path after an agent was
// killed whole: its processes are zombies of the frozen PID 1, which
// cannot reap them, and their cgroup files still name the ephemeral
// container's cgroup. They are nobody's: the check passes, in both of its
// steps. A live process of the same container is still another workload.
func TestCheckWorkloadZombies(t *testing.T) {
	const idAgent = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	zombie := func(pid int) fakeProcess {
		return fakeProcess{cgroup: "0::/../" + idAgent + "\n", stat: fmt.Sprintf("%d (cgfreeze) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0", pid)}
	}
	ps := map[int]fakeProcess{
		1:           {cgroup: "0::/../" + idApp + "/cgfreeze-0123456789abcdef\n", stat: "1 (app) S 0 1 1"},
		40:          zombie(40),
		41:          zombie(41),
		os.Getpid(): {cgroup: "0::/\n", pidNS: podPIDNS},
	}
	root := fakeProcTree(t, ps)
	if pid, err := selectPID(selectOpts(root)); err != nil || pid != 1 {
		t.Errorf("selectPID(default, zombies of a dead agent) = %d, %v; want 1, nil", pid, err)
	}
	listed, err := procs.ListPIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	if others, err := othersLeft(selectOpts(root), 2, listed, map[int]bool{1: true}); err != nil || others {
		t.Errorf("othersLeft(zombies) = %v, %v; want false", others, err)
	}

	ps[42] = fakeProcess{cgroup: "0::/../" + idAgent + "\n", stat: "42 (sh) S 1 1 1"}
	root = fakeProcTree(t, ps)
	if _, err := selectPID(selectOpts(root)); !errors.Is(err, ErrUnsafeTarget) || !strings.Contains(err.Error(), "1 process, PID 42") {
		t.Errorf("selectPID(default, a live process beside the zombies) = %v, want ErrUnsafeTarget naming PID 42 alone", err)
	}
}
