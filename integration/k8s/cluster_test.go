package k8s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/cgtest"
)

// Bounded waits.
const (
	// lockWait bounds the wait for /tmp/cgfreeze-itest.lock (other suites
	// hold it for a few minutes at most).
	lockWait = 30 * time.Minute
	// kubectlTimeout bounds one kubectl call.
	kubectlTimeout = 60 * time.Second
	// podReadyWait bounds a pod's start (local images, a warm node: seconds).
	podReadyWait = 90 * time.Second
	// agentWait bounds an agent's start and its first event.
	agentWait = 60 * time.Second
	// quietWindow is how long a frozen app must stay silent, and a thawed
	// one must take to print again (it prints every 0.2 s).
	quietWindow = 1500 * time.Millisecond
	// logSettle is how long requireStopped lets the app's log settle
	// before its first look: a line the app wrote just before the freeze
	// (it prints every 0.2 s) reaches the log through the runtime's shim,
	// which copies it on its own time (the shim is not frozen with the
	// app), and would otherwise show up between the two looks.
	logSettle = 300 * time.Millisecond
)

const (
	scratch = "/tmp/cgfreeze-k8s"
)

// The cluster that is up, for the signal handler's tear-down.
var current struct {
	sync.Mutex
	up bool
}

// teardownNow tears the cluster down if one is (or may be) up.
func teardownNow() {
	current.Lock()
	defer current.Unlock()
	if !current.up {
		return
	}
	cmd := exec.Command("bash", clusterScript, "down")
	cmd.Env = append(os.Environ(), "CGFREEZE_ITEST_LOCKED=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "k8s: cluster.sh down: %v\n", err)
	}
	current.up = false
}

// node is a running single-node cluster.
type node struct {
	t *testing.T
	// mode is "v1" or "v2": the cgroup version containerd and the kubelet see.
	mode       string
	kubeconfig string
	// cg2Mount is the host's cgroup2 mount (the v2 node's /sys/fs/cgroup).
	cg2Mount string
	// cg2Options are the cgroup2 superblock options before the node started.
	cg2Options string
	tmux       string
}

// The integration lock, taken by the first cluster and held until the run
// ends (TestMain releases it): the v1 and v2 clusters run back to back
// without queueing twice behind the other suites.
var lock struct {
	sync.Mutex
	release func()
}

// takeLock takes the integration lock (cgtest.Lock: a close-on-exec
// descriptor, so no child process inherits it) if this process does not
// hold it yet.
func takeLock(t *testing.T) {
	lock.Lock()
	defer lock.Unlock()
	if lock.release != nil {
		return
	}
	var waitStart time.Time
	release, err := cgtest.Lock(lockWait, func() {
		t.Logf("waiting for %s (another suite, the bench or the demo holds it)", cgtest.LockPath)
		waitStart = time.Now()
	})
	if err != nil {
		t.Fatal(err)
	}
	if !waitStart.IsZero() {
		timing("waiting for "+cgtest.LockPath+" (not part of the suite's own time)", time.Since(waitStart))
	}
	lock.release = release
}

// releaseLock releases the integration lock at the end of the run.
func releaseLock() {
	lock.Lock()
	defer lock.Unlock()
	if lock.release != nil {
		lock.release()
		lock.release = nil
	}
}

// startNode brings a cluster up for the test and tears it down when the test
// ends; it fails the test if anything is left afterwards.
func startNode(t *testing.T, mode string) *node {
	takeLock(t)
	n := &node{t: t, mode: mode, kubeconfig: filepath.Join(scratch, "admin.kubeconfig"), tmux: "cgfreeze-k8s-itest"}
	n.cg2Mount = cg2Mount()
	n.cg2Options = cg2Options(n.cg2Mount)
	start := time.Now()
	current.Lock()
	current.up = true
	current.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			n.dumpLogs()
		}
		_ = exec.Command("tmux", "-L", n.tmux, "kill-server").Run()
		start := time.Now()
		teardownNow()
		timing(mode+": tear-down", time.Since(start))
		if out, err := exec.Command("bash", clusterScript, "check").CombinedOutput(); err != nil {
			t.Errorf("left behind after the %s cluster:\n%s", mode, out)
		}
		if now := cg2Options(n.cg2Mount); now != n.cg2Options {
			t.Errorf("the cgroup2 options are %q after the %s cluster, %q before", now, mode, n.cg2Options)
		}
	})
	cmd := exec.Command("bash", clusterScript, "up", mode, binDir, imageDir)
	cmd.Env = append(os.Environ(), "CGFREEZE_K8S_RUNC_WRAPPER="+runcWrapper, "CGFREEZE_K8S_SCRATCH="+scratch, "CGFREEZE_ITEST_LOCKED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh up %s: %v\n%s", mode, err, tail(string(out), 4000))
	}
	timing(mode+": cluster up (certificates, etcd, control plane, containerd, images, node Ready)", time.Since(start))
	return n
}

func (n *node) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(scratch, "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		n.t.Logf("---- %s (tail)\n%s", l, tail(string(b), 2500))
	}
	if out, err := n.kubectl("get", "pods", "-A", "-o", "wide"); err == nil {
		n.t.Logf("---- pods\n%s", out)
	}
}

// kubectlCmd is the kubectl built for this run, by its path.
func (n *node) kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(binDir, "kubectl"), append([]string{"--kubeconfig=" + n.kubeconfig}, args...)...)
}

func (n *node) kubectlPath() string {
	return filepath.Join(binDir, "kubectl") + " --kubeconfig=" + n.kubeconfig
}

// kubectl runs kubectl and returns its stdout; the error carries stderr.
func (n *node) kubectl(args ...string) (string, error) {
	return n.kubectlIn("", args...)
}

func (n *node) kubectlIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := n.kubectlCmd(ctx, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (n *node) must(args ...string) string {
	n.t.Helper()
	out, err := n.kubectl(args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// ---------------------------------------------------------------- pods

// podStatus is the part of a pod's status the tests read.
type podStatus struct {
	Metadata struct {
		UID string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase                      string            `json:"phase"`
		PodIP                      string            `json:"podIP"`
		ContainerStatuses          []containerStatus `json:"containerStatuses"`
		EphemeralContainerStatuses []containerStatus `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name         string `json:"name"`
	ContainerID  string `json:"containerID"`
	Ready        bool   `json:"ready"`
	RestartCount int    `json:"restartCount"`
	State        struct {
		Running    *struct{} `json:"running"`
		Terminated *struct {
			ExitCode int    `json:"exitCode"`
			Reason   string `json:"reason"`
		} `json:"terminated"`
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
	} `json:"state"`
}

func (n *node) pod(name string) (podStatus, error) {
	var p podStatus
	out, err := n.kubectl("get", "pod", name, "-o", "json")
	if err != nil {
		return p, err
	}
	return p, json.Unmarshal([]byte(out), &p)
}

func (p podStatus) container(name string) *containerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	for i := range p.Status.EphemeralContainerStatuses {
		if p.Status.EphemeralContainerStatuses[i].Name == name {
			return &p.Status.EphemeralContainerStatuses[i]
		}
	}
	return nil
}

// waitFor polls cond every 200 ms until it returns true, for at most limit.
func (n *node) waitFor(what string, limit time.Duration, cond func() (bool, error)) {
	n.t.Helper()
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: not within %v (last error: %v)", what, limit, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ticker is the workload's main loop: it prints "tick N" every 0.2 s and
// exits at SIGTERM (between two ticks).
const ticker = `trap 'echo app: SIGTERM; exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done`

// podSpec is a pod of the workload image; extra is YAML merged under spec
// (indented by two spaces), app the app container's extra fields (indented
// by four).
func podSpec(name, script, extra, app string) string {
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", script})
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 30
  enableServiceLinks: false
  automountServiceAccountToken: false
%s
  containers:
  - name: app
    image: %s
    imagePullPolicy: Never
    command: %s
%s
`, name, extra, imageWorkload, cmd, app)
}

// createPod creates a pod and waits until its containers run; it is
// deleted when the test ends.
func (n *node) createPod(manifest string) {
	n.t.Helper()
	var meta struct {
		Name string
	}
	for _, l := range strings.Split(manifest, "\n") {
		if s, ok := strings.CutPrefix(l, "  name: "); ok && meta.Name == "" {
			meta.Name = s
		}
	}
	if _, err := n.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() {
		_, _ = n.kubectl("delete", "pod", meta.Name, "--grace-period=1", "--wait=true", "--timeout=45s", "--ignore-not-found")
	})
	n.waitRunning(meta.Name)
}

func (n *node) waitRunning(name string) {
	n.t.Helper()
	n.waitFor("pod "+name+" running", podReadyWait, func() (bool, error) {
		p, err := n.pod(name)
		if err != nil {
			return false, err
		}
		if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 {
			return false, fmt.Errorf("phase %q", p.Status.Phase)
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Running == nil {
				return false, fmt.Errorf("container %s not running: %+v", c.Name, c.State)
			}
		}
		return true, nil
	})
}

// containerID is the runtime's ID of the pod's app container (without
// containerd://).
func (n *node) containerID(pod string) string {
	const container = "app"
	n.t.Helper()
	p, err := n.pod(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	c := p.container(container)
	if c == nil || c.ContainerID == "" {
		n.t.Fatalf("pod %s has no container %s with an ID", pod, container)
	}
	return strings.TrimPrefix(c.ContainerID, "containerd://")
}

// lastTick is the last "tick N" the container printed (kubectl logs).
func (n *node) lastTick(pod string) (int, error) {
	const container = "app"
	out, err := n.kubectl("logs", pod, "-c", container, "--tail=20")
	if err != nil {
		return 0, err
	}
	tick := -1
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "tick "); ok {
			if v, err := strconv.Atoi(s); err == nil {
				tick = v
			}
		}
	}
	if tick < 0 {
		return 0, fmt.Errorf("no tick in the last lines of %s/%s: %q", pod, container, out)
	}
	return tick, nil
}

// requireStopped checks that the app prints nothing for quietWindow.
func (n *node) requireStopped(pod string) {
	const container = "app"
	n.t.Helper()
	time.Sleep(logSettle)
	a, err := n.lastTick(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	time.Sleep(quietWindow)
	b, err := n.lastTick(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	if a != b {
		n.t.Errorf("%s/%s printed tick %d then %d while it should be frozen", pod, container, a, b)
	}
}

// requireRunningApp checks that the app prints again.
func (n *node) requireRunningApp(pod string) {
	const container = "app"
	n.t.Helper()
	a, err := n.lastTick(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	n.waitFor(pod+"/"+container+" printing again", 10*time.Second, func() (bool, error) {
		b, err := n.lastTick(pod)
		return err == nil && b > a, err
	})
}

// ---------------------------------------------------------------- the host's view

func cg2Mount() string {
	b, _ := os.ReadFile("/proc/self/mounts")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	return ""
}

// cg2Options are the superblock options of the cgroup2 hierarchy, sorted.
func cg2Options(mount string) string {
	if mount == "" {
		return ""
	}
	out, err := exec.Command("bash", "-c", `awk -v m="$1" '{ split($0, a, " - "); split(a[1], f, " "); if (f[5] == m) { split(a[2], g, " "); print g[3]; exit } }' /proc/self/mountinfo | tr , '\n' | grep -vx -e rw -e ro -e seclabel | sort | paste -sd, -`, "sh", mount).Output()
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// setNsdelegate turns nsdelegate on for the cgroup2 hierarchy (as systemd
// mounts it): Debian's runc 1.1 turns it off whenever it starts a
// privileged container; each v2 scenario starts from it being on.
func (n *node) setNsdelegate() {
	n.t.Helper()
	if strings.Contains(","+cg2Options(n.cg2Mount)+",", ",nsdelegate,") {
		return
	}
	opts := strings.Trim(cg2Options(n.cg2Mount)+",nsdelegate", ",")
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`d=$(mktemp -d) && mount -t cgroup2 -o "$1" cgroup2 "$d"; rc=$?; umount "$d" 2>/dev/null; rmdir "$d"; exit $rc`, "sh", opts).CombinedOutput()
	if err != nil {
		n.t.Fatalf("turning nsdelegate on: %v: %s", err, out)
	}
}

// hostCgroup is the container's cgroup directory in the freezer hierarchy
// (v1) or the cgroup2 hierarchy (v2), found by the ID in its name.
func (n *node) hostCgroup(id string) string {
	n.t.Helper()
	root := "/sys/fs/cgroup/freezer"
	if n.mode == "v2" {
		root = n.cg2Mount
	}
	var found string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Contains(d.Name(), id) {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		n.t.Fatalf("no cgroup for container %s under %s", id, root)
	}
	return found
}

// hostFrozen says whether the kernel has the container's processes frozen:
// freezer.state on v1; on v2 the cgroup's own cgroup.events (direct) or
// its cgfreeze-<random> child's (subtree).
func (n *node) hostFrozen(id string) (bool, string) {
	cg := n.hostCgroup(id)
	if n.mode == "v1" {
		b, err := os.ReadFile(filepath.Join(cg, "freezer.state"))
		return err == nil && strings.TrimSpace(string(b)) == "FROZEN", cg + "/freezer.state: " + strings.TrimSpace(string(b))
	}
	// The subtree strategy's child is cgfreeze-<random> (docs/design.md, ownership).
	dirs := []string{cg}
	if children, err := filepath.Glob(filepath.Join(cg, "cgfreeze-*")); err == nil {
		dirs = append(dirs, children...)
	}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err == nil && strings.Contains(string(b), "frozen 1") {
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if len(bytes.TrimSpace(procs)) > 0 {
				return true, dir + " frozen"
			}
		}
	}
	return false, cg + " not frozen"
}

func (n *node) requireHostFrozen(id string, want bool) {
	n.t.Helper()
	got, what := n.hostFrozen(id)
	if got != want {
		n.t.Errorf("container %s: frozen %v, want %v (%s)", id, got, want, what)
	}
}

// requireNoChild checks that no cgfreeze child cgroup is left in the
// node's cgroups (kubepods on v1, k8s.io on the v2 node).
func (n *node) requireNoChild() {
	n.t.Helper()
	for _, root := range []string{"/sys/fs/cgroup/freezer/kubepods", filepath.Join(n.cg2Mount, "kubepods"), filepath.Join(n.cg2Mount, "k8s.io")} {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "cgfreeze-") {
				n.t.Errorf("a cgfreeze child cgroup is left: %s", p)
			}
			return nil
		})
	}
}

// ---------------------------------------------------------------- agents

// event is one JSON event of cgfreeze (docs/usage.md).
type event struct {
	Event       string `json:"event"`
	PID         int    `json:"pid"`
	Cgroup      string `json:"cgroup"`
	Version     int    `json:"version"`
	Strategy    string `json:"strategy"`
	ContainerID string `json:"container_id"`
	Reason      string `json:"reason"`
	ExitCode    int    `json:"exit_code"`
	Error       string `json:"error"`
	Count       int    `json:"count"`
	raw         string
}

func parseEvents(out string) []event {
	var evs []event
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var e event
		if json.Unmarshal([]byte(l), &e) == nil {
			e.raw = l
			evs = append(evs, e)
		}
	}
	return evs
}

func findEvent(evs []event, name string) *event {
	for i := range evs {
		if evs[i].Event == name {
			return &evs[i]
		}
	}
	return nil
}

// profile is how the agent's ephemeral container is made.
type profile struct {
	name string
	// flags for kubectl debug.
	flags []string
	// strategy cgfreeze takes on each node.
	strategy map[string]string
}

var sysadmin = profile{
	name:     "sysadmin",
	flags:    []string{"--profile=sysadmin"},
	strategy: map[string]string{"v1": "freezer", "v2": "direct"},
}

// customProfile: CAP_SYS_ADMIN and CAP_SYS_PTRACE without privileged (the
// file is written by customCaps).
func customCaps(t *testing.T) profile {
	f := filepath.Join(t.TempDir(), "caps.yaml")
	err := os.WriteFile(f, []byte(`securityContext:
  capabilities:
    add: [SYS_ADMIN, SYS_PTRACE]
  seccompProfile: {type: Unconfined}
  appArmorProfile: {type: Unconfined}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return profile{
		name:     "caps",
		flags:    []string{"--profile=general", "--custom=" + f},
		strategy: map[string]string{"v1": "freezer", "v2": "subtree"},
	}
}

// debug adds an agent ephemeral container named name without attaching
// (kubectl debug returns once it is created), with cgfreeze's args.
func (n *node) debug(pod, name string, prof profile, args ...string) {
	n.t.Helper()
	a := append([]string{"debug", "pod/" + pod, "-c", name, "--image=" + imageCgfreeze, "--image-pull-policy=Never", "--target=app"}, prof.flags...)
	if len(args) > 0 {
		a = append(append(a, "--arguments-only", "--"), args...)
	}
	n.must(a...)
}

// agentEvents waits until the agent's log holds the event named want and
// returns every event so far.
func (n *node) agentEvents(pod, name, want string, limit time.Duration) []event {
	n.t.Helper()
	var evs []event
	var last string
	n.waitFor(fmt.Sprintf("event %q from %s/%s", want, pod, name), limit, func() (bool, error) {
		out, err := n.kubectl("logs", pod, "-c", name)
		if err != nil {
			return false, err
		}
		last = out
		evs = parseEvents(out)
		if findEvent(evs, want) != nil {
			return true, nil
		}
		return false, fmt.Errorf("log so far: %q", tail(last, 800))
	})
	return evs
}

// agentExit waits until the ephemeral container has ended and returns its
// exit code.
func (n *node) agentExit(pod, name string, limit time.Duration) int {
	n.t.Helper()
	code := -1
	n.waitFor(fmt.Sprintf("%s/%s terminated", pod, name), limit, func() (bool, error) {
		p, err := n.pod(pod)
		if err != nil {
			return false, err
		}
		c := p.container(name)
		if c == nil || c.State.Terminated == nil {
			return false, fmt.Errorf("state %+v", c)
		}
		code = c.State.Terminated.ExitCode
		return true, nil
	})
	return code
}

func (n *node) requireFrozenEvent(e *event, prof profile, containerID string) {
	n.t.Helper()
	if e == nil {
		n.t.Fatal("no frozen event")
	}
	version := 1
	if n.mode == "v2" {
		version = 2
	}
	if e.Version != version || e.Strategy != prof.strategy[n.mode] || e.ContainerID != containerID {
		n.t.Errorf("frozen event %s: want version %d, strategy %s, container_id %s", e.raw, version, prof.strategy[n.mode], containerID)
	}
}
