package procs

import (
	"strconv"
	"strings"
	"testing"
)

const (
	idPause = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idApp   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	idOther = "0123456789abcdef0123456789abcdef0123456789abcdef00000000000000ff"
)

func TestContainerID(t *testing.T) {
	for _, tt := range []struct {
		seg, id string
		ok      bool
	}{
		{idApp, idApp, true},
		{"docker-" + idApp + ".scope", idApp, true},
		{"cri-containerd-" + idApp + ".scope", idApp, true},
		{"crio-" + idApp + ".scope", idApp, true},
		{"libpod-" + idApp + ".scope", idApp, true},
		{"crio-conmon-" + idApp + ".scope", "", false},
		{"pod1b2c3d4e-0000-1111-2222-333344445555", "", false},
		{"kubepods-besteffort-pod1b2c_3d4e.slice", "", false},
		{idApp[:63], "", false},
		{strings.ToUpper(idApp), "", false},
		{"..", "", false},
		{"Docker-" + idApp + ".scope", "", false},
		{"docker_" + idApp, "", false},
		{"-" + idApp, "", false},
		{idApp + ".slice", "", false},
		{"x" + idApp, "", false},
		{"", "", false},
	} {
		id, ok := ContainerID(tt.seg)
		if id != tt.id || ok != tt.ok {
			t.Errorf("ContainerID(%q) = %q, %v; want %q, %v", tt.seg, id, ok, tt.id, tt.ok)
		}
	}
}

// summary renders containers as "cgroup id hasID pids" lines.
func summary(cs []Container) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.Cgroup + " " + c.ID)
		if c.HasID {
			b.WriteString(" id")
		}
		for _, p := range c.Processes {
			b.WriteString(" " + strconv.Itoa(p.PID) + "@" + p.Cgroup)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestContainersShared is the agent's view in a pod that shares its PID
// namespace, on cgroup v2: the agent is in its own cgroup namespace, so the
// other containers read /../<id>; a sub-cgroup of the app stays with it; an
// entry without a cgroup file (exited) and a non-PID entry are skipped.
func TestContainersShared(t *testing.T) {
	cs, err := Containers("testdata/shared", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := "/ \n" +
		"/../" + idOther + " " + idOther + " id 20@/../" + idOther + "\n" +
		"/../" + idApp + " " + idApp + " id 7@/../" + idApp + " 12@/../" + idApp + "/worker 31@/../" + idApp + "\n" +
		"/../" + idPause + " " + idPause + " id 1@/../" + idPause + "\n"
	// The agent's own cgroup is "/", a group of its own named by its path.
	want = strings.Replace(want, "/ \n", "/ / 30@/\n", 1)
	if got := summary(cs); got != want {
		t.Errorf("Containers(shared) =\n%s\nwant\n%s", got, want)
	}
	if got := cs[2].Processes[0].Command; got != "/bin/busybox sh -c while :; do sleep 1; done" {
		t.Errorf("command of PID 7 = %q", got)
	}
	// Only each container's first process has its command read.
	for _, p := range cs[2].Processes[1:] {
		if p.Command != "" {
			t.Errorf("command of PID %d, not its container's first = %q, want none read", p.PID, p.Command)
		}
	}
	if got := command("testdata/shared", 31); got != "[zombie]" {
		t.Errorf("command of PID 31 (empty cmdline) = %q, want [zombie]", got)
	}
	wantStr := "/../" + idPause + " (id " + idPause + `): 1 process, PID 1 "pause"`
	if got := cs[3].String(); got != wantStr {
		t.Errorf("String() = %q, want %q", got, wantStr)
	}
}

// TestContainersShapes: the path shapes of docker, containerd, CRI-O and
// podman, cgroupfs and systemd drivers, seen from the host.
func TestContainersShapes(t *testing.T) {
	cs, err := Containers("testdata/shapes", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := "/kubepods/besteffort/pod1234-5678/" + idOther + " " + idOther + " id 101@/kubepods/besteffort/pod1234-5678/" + idOther + "\n" +
		"/machine.slice/libpod-" + idPause + ".scope " + idPause + " id 102@/machine.slice/libpod-" + idPause + ".scope/container\n" +
		"/system.slice/crio-conmon-" + idOther + ".scope crio-conmon-" + idOther + " 103@/system.slice/crio-conmon-" + idOther + ".scope\n" +
		"/system.slice/docker-" + idApp + ".scope " + idApp + " id 100@/system.slice/docker-" + idApp + ".scope\n" +
		"/system.slice/sshd.service sshd.service 104@/system.slice/sshd.service\n" +
		"/user.slice/user-0.slice/session-1.scope session-1 105@/user.slice/user-0.slice/session-1.scope\n"
	if got := summary(cs); got != want {
		t.Errorf("Containers(shapes, 2) =\n%s\nwant\n%s", got, want)
	}
	cs, err = Containers("testdata/shapes", 1)
	if err != nil {
		t.Fatal(err)
	}
	want = "/docker/" + idApp + " " + idApp + " id 106@/docker/" + idApp + "\n"
	if got := summary(cs); got != want {
		t.Errorf("Containers(shapes, 1) =\n%s\nwant\n%s", got, want)
	}
	if _, err := Containers("testdata/shapes", 3); err == nil {
		t.Error("Containers(version 3) succeeded")
	}
	if _, err := Containers("testdata/nonexistent", 2); err == nil {
		t.Error("Containers(missing proc) succeeded")
	}
}

// TestContainersV1Systemd: host paths (no cgroup namespace) of the systemd
// driver on v1, where the freezer line is the one that counts.
func TestContainersV1Systemd(t *testing.T) {
	cs, err := Containers("testdata/v1systemd", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[1].ID != idApp || len(cs[1].Processes) != 2 || cs[0].ID != idOther {
		t.Fatalf("Containers(v1systemd, 1) =\n%s", summary(cs))
	}
	if cs[1].Processes[0].Command != "nginx: master process" {
		t.Errorf("command of PID 1 = %q", cs[1].Processes[0].Command)
	}
}

func TestMatchContainers(t *testing.T) {
	cs, err := Containers("testdata/shared", 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []Container) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID[:4]+"…"+c.ID[60:])
		}
		return strings.Join(s, ",")
	}
	for _, tt := range []struct{ id, want string }{
		{idApp, "0123…cdef"}, // in full, though idOther shares 48 digits
		{"containerd://" + idApp, "0123…cdef"},
		{"0123456789AB", "0123…00ff,0123…cdef"}, // ambiguous, any case
		{"0123456789abcdef0123456789abcdef0123456789abcdef00", "0123…00ff"},
		{"aaaa", "aaaa…aaaa"},
		{"cri-o://aaaa", "aaaa…aaaa"},
		{"bbbb", ""},
		{"", ""},
		{"/", ""}, // the agent's own group has no ID: never matched
	} {
		if got := ids(MatchContainers(cs, tt.id)); got != tt.want {
			t.Errorf("MatchContainers(%q) = %s, want %s", tt.id, got, tt.want)
		}
	}
}

func TestBelow(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"/", "/", true},
		{"/", "/x", true},
		{"/", "/../x", false},
		{"/../x", "/../x", true},
		{"/../x", "/../x/cgfreeze", true},
		{"/../x", "/../xy", false},
		{"/../x/y", "/../x", false},
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/bc", false},
	} {
		if got := Below(tt.a, tt.b); got != tt.want {
			t.Errorf("Below(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
