package k8s

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kubectl-freeze (cmd/kubectl-freeze) against the real cluster: a
// Deployment's replicas frozen and thawed together, the plugin killed, a
// refusal in one pod, a pod that shares its PID namespace, status and thaw.

// Bounds of the plugin's scenarios.
const (
	// allFrozenWait: issue 12 asks for every replica frozen within 30 s.
	allFrozenWait = 30 * time.Second
	// pluginExitWait bounds the plugin's end after SIGTERM (every agent
	// thawed and confirmed).
	pluginExitWait = 60 * time.Second
	// selfThawWait bounds the agents' own thaw after the plugin's SIGKILL.
	selfThawWait = 60 * time.Second
)

// TestKubectlFreezeV1 runs the plugin's scenarios on the cgroup v1 node.
func TestKubectlFreezeV1(t *testing.T) {
	plugin := buildPlugin(t)
	n := startNode(t, "v1")
	n.scenario("PluginDeployment", func(n *node) { n.pluginDeployment(plugin) })
	n.scenario("PluginKilled", func(n *node) { n.pluginKilled(plugin) })
	n.scenario("PluginRefusal", func(n *node) { n.pluginRefusal(plugin) })
	n.scenario("PluginSharedPID", func(n *node) { n.pluginSharedPID(plugin) })
	n.scenario("PluginLostNetwork", func(n *node) { n.pluginLostNetwork(plugin) })
	n.scenario("PluginStatusThaw", func(n *node) { n.pluginStatusThaw(plugin) })
	n.scenario("PluginDropConnections", func(n *node) { n.pluginDropConnections(plugin) })
	n.scenario("PluginTwoNodes", func(n *node) { n.pluginTwoNodes(plugin) })
}

// TestKubectlFreezeV2 runs them on the emulated cgroup v2 node, where the
// privileged agent freezes the target's cgroup.freeze (direct); those that
// do not depend on the node's cgroup version (the refusal, the lost
// network, the second node) run on v1 only.
func TestKubectlFreezeV2(t *testing.T) {
	plugin := buildPlugin(t)
	n := startNode(t, "v2")
	if n.cg2Mount == "" {
		t.Fatal("this host has no cgroup2 hierarchy")
	}
	n.scenario("PluginDeployment", func(n *node) { n.pluginDeployment(plugin) })
	n.scenario("PluginKilled", func(n *node) { n.pluginKilled(plugin) })
	n.scenario("PluginSharedPID", func(n *node) { n.pluginSharedPID(plugin) })
	n.scenario("PluginStatusThaw", func(n *node) { n.pluginStatusThaw(plugin) })
	n.scenario("PluginDropConnections", func(n *node) { n.pluginDropConnections(plugin) })
}

// buildPlugin builds kubectl-freeze as the README says.
func buildPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := run("../..", []string{"CGO_ENABLED=0"}, goTool(), "build", "-o", filepath.Join(dir, "kubectl-freeze"), "./cmd/kubectl-freeze"); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "kubectl-freeze")
}

// pluginRun is a running kubectl-freeze.
type pluginRun struct {
	n      *node
	cmd    *exec.Cmd
	events chan pluginEvent
	stderr *strings.Builder
	mu     sync.Mutex
	exited chan struct{}
	code   int
}

// pluginEvent is one line of the plugin's -o json.
type pluginEvent struct {
	Event     string    `json:"event"`
	Time      time.Time `json:"time"`
	Reason    string    `json:"reason"`
	Processes *int      `json:"processes"`
	ExitCode  *int      `json:"exit_code"`
	Error     string    `json:"error"`
	Count     *int      `json:"count"`
	// Connections of a connections_dropped event.
	Connections []struct {
		Local, Remote string
	} `json:"connections"`
	Pod struct {
		Name, Namespace, Node, Container, Agent string
	} `json:"pod"`
	raw string
}

// startPlugin runs kubectl-freeze with the test's image and kubeconfig.
func (n *node) startPlugin(plugin string, args ...string) *pluginRun {
	n.t.Helper()
	args = append(args, "--kubeconfig="+n.kubeconfig, "--image="+imageCgfreeze, "--image-pull-policy=Never", "-o", "json")
	cmd := exec.Command(plugin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	r := &pluginRun{n: n, cmd: cmd, events: make(chan pluginEvent, 64), stderr: &strings.Builder{}, exited: make(chan struct{})}
	cmd.Stderr = &lockedBuilder{mu: &r.mu, b: r.stderr}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(pluginExitWait):
			_ = cmd.Process.Kill()
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e pluginEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e.Event, e.Error = "malformed", err.Error()
			}
			e.raw = sc.Text()
			r.events <- e
		}
		close(r.events)
		_ = cmd.Wait()
		r.code = cmd.ProcessState.ExitCode()
		close(r.exited)
	}()
	return r
}

type lockedBuilder struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (r *pluginRun) stderrText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

// waitFrozen collects events until each of pods had its frozen event and
// the holding event that follows it with the count (event contract schema
// 2), and returns the frozen events by pod.
func (r *pluginRun) waitFrozen(pods []string) map[string]pluginEvent {
	r.n.t.Helper()
	got := r.waitEvents(pods, "frozen", "holding")
	for _, p := range pods {
		if f, h := got["frozen"][p], got["holding"][p]; f.Processes != nil || h.Processes == nil || *h.Processes < 1 {
			r.n.t.Errorf("pod %s: frozen %s, holding %s; want the count (at least 1) in holding only", p, f.raw, h.raw)
		}
	}
	return got["frozen"]
}

// stopAllThawed sends the plugin SIGTERM, requires its exit 0 and a thawed
// event for each of pods, and returns how long that took.
func (r *pluginRun) stopAllThawed(pods []string) time.Duration {
	n := r.n
	n.t.Helper()
	stop := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	code, rest := r.wait(pluginExitWait)
	if code != 0 {
		n.t.Errorf("the plugin exited %d after SIGTERM, want 0\nstderr:\n%s", code, r.stderrText())
	}
	thawed := map[string]bool{}
	for _, e := range rest {
		if e.Event == "thawed" {
			thawed[e.Pod.Name] = true
		}
	}
	if len(thawed) != len(pods) {
		n.t.Errorf("thawed events for %v, want all of %v", thawed, pods)
	}
	return time.Since(stop)
}

// waitEvents collects events until each of pods had an event of each of
// names, and returns them by name, then by pod.
func (r *pluginRun) waitEvents(pods []string, names ...string) map[string]map[string]pluginEvent {
	r.n.t.Helper()
	const limit = allFrozenWait
	got := map[string]map[string]pluginEvent{}
	for _, name := range names {
		got[name] = map[string]pluginEvent{}
	}
	complete := func() bool {
		for _, name := range names {
			for _, p := range pods {
				if _, ok := got[name][p]; !ok {
					return false
				}
			}
		}
		return true
	}
	deadline := time.After(limit)
	for !complete() {
		select {
		case e, ok := <-r.events:
			if !ok {
				<-r.exited
				r.n.t.Fatalf("the plugin ended (exit %d) before every pod of %v had its %v events: %v\nstderr:\n%s", r.code, pods, names, got, r.stderrText())
			}
			r.n.t.Logf("plugin: %s", e.raw)
			if e.Event == "malformed" {
				r.n.t.Errorf("a plugin line is not JSON: %s", e.Error)
			}
			if m, ok := got[e.Event]; ok {
				m[e.Pod.Name] = e
			}
		case <-deadline:
			r.n.t.Fatalf("not every pod of %v had its %v events within %v: %v\nstderr:\n%s", pods, names, limit, got, r.stderrText())
		}
	}
	return got
}

// wait waits for the plugin's exit, draining its events, and returns its
// code.
func (r *pluginRun) wait(limit time.Duration) (int, []pluginEvent) {
	r.n.t.Helper()
	var rest []pluginEvent
	deadline := time.After(limit)
	for {
		select {
		case e, ok := <-r.events:
			if ok {
				r.n.t.Logf("plugin: %s", e.raw)
				rest = append(rest, e)
				continue
			}
			<-r.exited
			return r.code, rest
		case <-deadline:
			r.n.t.Fatalf("the plugin did not end within %v\nstderr:\n%s", limit, r.stderrText())
		}
	}
}

// createWorker creates a Deployment of the ticker with replicas pods and
// waits for them to run; it is deleted when the test ends.
func (n *node) createWorker(name string, replicas int) []string {
	n.t.Helper()
	return n.createDeployment(name, replicas, ticker, "")
}

// createDeployment creates a Deployment of the workload image running
// script with replicas pods and waits for them to run; extra is YAML added
// under the pod template's spec (indented by six spaces). It is deleted
// when the test ends.
func (n *node) createDeployment(name string, replicas int, script, extra string) []string {
	n.t.Helper()
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", script})
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      terminationGracePeriodSeconds: 5
      enableServiceLinks: false
      automountServiceAccountToken: false
%[5]s
      containers:
      - name: app
        image: %[3]s
        imagePullPolicy: Never
        command: %[4]s
`, name, replicas, imageWorkload, cmd, extra)
	if _, err := n.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() {
		_, _ = n.kubectl("delete", "deployment", name, "--wait=true", "--timeout=60s", "--ignore-not-found")
		_, _ = n.kubectl("delete", "pods", "-l", "app="+name, "--grace-period=1", "--wait=true", "--timeout=60s", "--ignore-not-found")
	})
	var pods []string
	n.waitFor(fmt.Sprintf("deployment %s: %d pods running", name, replicas), podReadyWait, func() (bool, error) {
		out, err := n.kubectl("get", "pods", "-l", "app="+name, "-o", `jsonpath={range .items[?(@.status.phase=="Running")]}{.metadata.name}{"\n"}{end}`)
		if err != nil {
			return false, err
		}
		pods = strings.Fields(out)
		return len(pods) == replicas, fmt.Errorf("running: %q", pods)
	})
	for _, p := range pods {
		n.waitRunning(p)
	}
	return pods
}

// pluginDeployment: `kubectl freeze deployment/worker` freezes the 3
// replicas within 30 s (their output stops); SIGTERM thaws them all and
// the plugin exits 0; status reads what each agent last said, and thaw
// finds nothing left.
func (n *node) pluginDeployment(plugin string) {
	name := n.podName("worker")
	pods := n.createWorker(name, 3)
	start := time.Now()
	r := n.startPlugin(plugin, "deployment/"+name)
	frozen := r.waitFrozen(pods)
	n.t.Logf("all %d replicas frozen %v after the plugin started", len(pods), time.Since(start).Round(time.Millisecond))
	for _, p := range pods {
		e := frozen[p]
		if e.Pod.Namespace != "default" || e.Pod.Container != "app" || e.Pod.Node == "" || !strings.HasPrefix(e.Pod.Agent, "cgfreeze-") {
			n.t.Errorf("frozen event of %s: pod object %+v", p, e.Pod)
		}
		n.requireStopped(p)
	}
	n.t.Logf("SIGTERM: every replica thawed and the plugin ended in %v", r.stopAllThawed(pods).Round(time.Millisecond))
	for _, p := range pods {
		n.requireRunningApp(p)
	}

	// The plugin ends once every agent said thawed; the kubelet reports
	// the agents' own exits a moment later (its pod status lags), and
	// status reads that state.
	for _, p := range pods {
		if code := n.agentExit(p, frozen[p].Pod.Agent, agentWait); code != 0 {
			n.t.Errorf("the agent of %s exited %d after its thaw, want 0", p, code)
		}
	}
	// status is read-only and reads the agents' logs.
	before := n.must("get", "pods", "-l", "app="+name, "-o", "jsonpath={.items[*].spec.ephemeralContainers[*].name}")
	out, err := exec.Command(plugin, "status", "deployment/"+name, "--kubeconfig="+n.kubeconfig).CombinedOutput()
	if err != nil {
		n.t.Fatalf("kubectl freeze status: %v\n%s", err, out)
	}
	n.t.Logf("kubectl freeze status:\n%s", out)
	if c := strings.Count(string(out), "ended"); c != len(pods) || !strings.Contains(string(out), "reason=stdin") {
		n.t.Errorf("status shows %d ended agents (want %d, last event thawed reason=stdin):\n%s", c, len(pods), out)
	}
	if after := n.must("get", "pods", "-l", "app="+name, "-o", "jsonpath={.items[*].spec.ephemeralContainers[*].name}"); after != before {
		n.t.Errorf("status changed the pods' ephemeral containers: %q, then %q", before, after)
	}
	// thaw of pods that nothing holds: nothing to thaw, exit 0.
	out, err = exec.Command(plugin, "thaw", "deployment/"+name, "--kubeconfig="+n.kubeconfig, "--image="+imageCgfreeze, "--image-pull-policy=Never").CombinedOutput()
	if err != nil {
		n.t.Fatalf("kubectl freeze thaw: %v\n%s", err, out)
	}
	if c := strings.Count(string(out), "nothing to thaw"); c != len(pods) {
		n.t.Errorf("thaw: %d pods with nothing to thaw, want %d:\n%s", c, len(pods), out)
	}
}

// pluginKilled: SIGKILL of the plugin; the runtime closes each agent's
// stdin (stdinOnce) and every replica thaws by itself. The time is
// measured.
func (n *node) pluginKilled(plugin string) {
	name := n.podName("worker")
	pods := n.createWorker(name, 3)
	r := n.startPlugin(plugin, "deployment/"+name)
	r.waitFrozen(pods)
	n.requireStopped(pods[0])
	ticks := map[string]int{}
	for _, p := range pods {
		t, err := n.lastTick(p)
		if err != nil {
			n.t.Fatal(err)
		}
		ticks[p] = t
	}
	killed := time.Now()
	_ = r.cmd.Process.Kill()
	for _, p := range pods {
		n.waitFor(p+" printing again after the plugin's SIGKILL", selfThawWait, func() (bool, error) {
			t, err := n.lastTick(p)
			return err == nil && t > ticks[p], err
		})
		n.t.Logf("%s thawed by itself %v after the plugin's SIGKILL (log polled every 0.2 s)", p, time.Since(killed).Round(100*time.Millisecond))
	}
}

// pluginRefusal: one replica is already held by another plugin's agent;
// freezing the Deployment is refused there (cgfreeze exit 8), and all or
// nothing thaws the two others; the plugin exits 1 with that pod's reason.
func (n *node) pluginRefusal(plugin string) {
	name := n.podName("worker")
	pods := n.createWorker(name, 3)
	first := n.startPlugin(plugin, "pod/"+pods[0])
	first.waitFrozen(pods[:1])
	r := n.startPlugin(plugin, "deployment/"+name)
	code, _ := r.wait(allFrozenWait + pluginExitWait)
	stderr := r.stderrText()
	if code != 1 {
		n.t.Errorf("the plugin exited %d with one pod held by another, want 1\nstderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "pod/"+pods[0]) || !strings.Contains(stderr, "exit 8") {
		n.t.Errorf("stderr does not give %s's refusal (exit 8):\n%s", pods[0], stderr)
	}
	for _, p := range pods[1:] {
		n.requireRunningApp(p)
	}
	n.requireStopped(pods[0]) // still the first plugin's
	_ = first.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := first.wait(pluginExitWait); code != 0 {
		n.t.Errorf("the first plugin exited %d, want 0\nstderr:\n%s", code, first.stderrText())
	}
	n.requireRunningApp(pods[0])
}

// pluginSharedPID: a pod that shares its PID namespace (PID 1 is the
// pause process) is frozen like any other: the agent takes the target by
// the container ID from the pod's status.
func (n *node) pluginSharedPID(plugin string) {
	pod := n.podName("shared")
	n.createPod(podSpec(pod, ticker, "  shareProcessNamespace: true", ""))
	r := n.startPlugin(plugin, pod)
	r.waitFrozen([]string{pod})
	n.requireStopped(pod)
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := r.wait(pluginExitWait); code != 0 {
		n.t.Errorf("the plugin exited %d, want 0\nstderr:\n%s", code, r.stderrText())
	}
	n.requireRunningApp(pod)
}
