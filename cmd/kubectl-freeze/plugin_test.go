package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func TestParseTarget(t *testing.T) {
	for arg, want := range map[string]targetRef{
		"web-1": {"pod", "web-1"}, "pod/web-1": {"pod", "web-1"}, "po/web-1": {"pod", "web-1"},
		"deployment/worker": {"deployment", "worker"}, "deploy/worker": {"deployment", "worker"},
		"deployments.apps/worker": {"deployment", "worker"}, "sts/db": {"statefulset", "db"},
		"StatefulSet/db": {"statefulset", "db"}, "rs/w-5d8": {"replicaset", "w-5d8"}, "ds/agent": {"daemonset", "agent"},
	} {
		got, err := parseTarget(arg)
		if err != nil || got != want {
			t.Errorf("parseTarget(%q) = %v, %v; want %v", arg, got, err, want)
		}
	}
	for _, arg := range []string{"service/web", "deployment/", "a/b/c", "job/x"} {
		if _, err := parseTarget(arg); err == nil {
			t.Errorf("parseTarget(%q) accepted", arg)
		}
	}
}

func podNames(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestResolveTargets(t *testing.T) {
	worker := map[string]string{"app": "worker"}
	pending := runningPod("worker-pending", worker, "app")
	pending.Status.Phase = corev1.PodPending
	gone := runningPod("worker-gone", worker, "app")
	now := metav1.Now()
	gone.DeletionTimestamp = &now
	c := fakeCluster(deployment("worker", worker),
		runningPod("worker-b", worker, "app"), runningPod("worker-a", worker, "app"), pending, gone,
		runningPod("web-1", map[string]string{"app": "web"}, "nginx"),
		runningPod("other", map[string]string{"app": "worker"}, "app"))
	ctx := context.Background()

	sel, err := resolveTargets(ctx, c, testNS, []string{"deployment/worker"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := podNames(sel.Pods); !reflect.DeepEqual(got, []string{"other", "worker-a", "worker-b"}) {
		t.Errorf("deployment/worker: pods %q", got)
	}
	if len(sel.Skipped) != 2 || !strings.Contains(sel.Skipped["worker-pending"], "not running") || sel.Skipped["worker-gone"] != "being deleted" {
		t.Errorf("deployment/worker: skipped %v", sel.Skipped)
	}
	if len(sel.Selectors) != 1 || sel.Selectors[0].String() != "app=worker" {
		t.Errorf("deployment/worker: selectors %v", sel.Selectors)
	}

	sel, err = resolveTargets(ctx, c, testNS, []string{"web-1", "pod/worker-a"}, "app=web")
	if err != nil {
		t.Fatal(err)
	}
	if got := podNames(sel.Pods); !reflect.DeepEqual(got, []string{"web-1", "worker-a"}) {
		t.Errorf("web-1 pod/worker-a -l app=web: pods %q (each once)", got)
	}

	for _, tc := range []struct {
		args     []string
		selector string
		noPods   bool
	}{
		{[]string{"pod/missing"}, "", true},
		{[]string{"deployment/missing"}, "", true},
		{nil, "app=nothing", true},
		{[]string{"pod/worker-pending"}, "", true},
		{nil, "app in (", false},
	} {
		_, err := resolveTargets(ctx, c, testNS, tc.args, tc.selector)
		if err == nil || errors.Is(err, errNoPods) != tc.noPods {
			t.Errorf("resolveTargets(%q, %q) = %v; want an error, errNoPods %v", tc.args, tc.selector, err, tc.noPods)
		}
	}
	// Another namespace sees none of these.
	if _, err := resolveTargets(ctx, c, "elsewhere", []string{"deployment/worker"}, ""); !errors.Is(err, errNoPods) {
		t.Errorf("deployment/worker in another namespace: %v", err)
	}
}

func TestTargetContainer(t *testing.T) {
	p := runningPod("p", nil, "sidecar", "app")
	if name, id, err := targetContainer(p, ""); err != nil || name != "sidecar" || id != "containerd://p-sidecar" {
		t.Errorf("default: %q %q %v; want the first container", name, id, err)
	}
	p.Annotations = map[string]string{DefaultContainerAnnotation: "app"}
	if name, id, err := targetContainer(p, ""); err != nil || name != "app" || id != "containerd://p-app" {
		t.Errorf("annotated: %q %q %v; want app", name, id, err)
	}
	if name, _, err := targetContainer(p, "sidecar"); err != nil || name != "sidecar" {
		t.Errorf("-c sidecar: %q %v", name, err)
	}
	if _, _, err := targetContainer(p, "nope"); err == nil || !strings.Contains(err.Error(), "sidecar, app") {
		t.Errorf("-c nope: %v; want the list of containers", err)
	}
	p.Status.ContainerStatuses[1].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	if _, _, err := targetContainer(p, "app"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("a container not running: %v", err)
	}
}

// The agent's ephemeral container: what issue 12 asks of it, field by
// field.
func TestAgentContainer(t *testing.T) {
	o := agentOptions{Image: "reg/cgfreeze:v1", PullPolicy: corev1.PullNever, Duration: 5 * time.Minute, Timeout: 7 * time.Second,
		Drop: "required", Extra: []string{"--drop-remote-port=5672"}}
	ec := agentContainer("cgfreeze-abcde", "app", freezeArgs("containerd://0123", o), true, o)
	if ec.TargetContainerName != "app" || ec.Name != "cgfreeze-abcde" || ec.Image != "reg/cgfreeze:v1" || ec.ImagePullPolicy != corev1.PullNever {
		t.Errorf("container %+v", ec)
	}
	if !ec.Stdin || !ec.StdinOnce || ec.TTY {
		t.Errorf("stdin %v stdinOnce %v tty %v; want true true false", ec.Stdin, ec.StdinOnce, ec.TTY)
	}
	sc := ec.SecurityContext
	if sc == nil || sc.Privileged == nil || !*sc.Privileged || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsNonRoot == nil || *sc.RunAsNonRoot {
		t.Errorf("securityContext %+v; want privileged, runAsUser 0, runAsNonRoot false", sc)
	}
	if len(ec.Command) != 0 {
		t.Errorf("command %q: the image's entrypoint (cgfreeze) must run", ec.Command)
	}
	want := []string{"--container-id", "containerd://0123", "--lease", "stdin", "-o", "json", "--start-timeout", "1m0s",
		"--heartbeat", "30s", "--log-level", "warn", "--duration", "5m0s", "--timeout", "7s", "--drop-connections=required", "--drop-remote-port=5672"}
	if !reflect.DeepEqual(ec.Args, want) {
		t.Errorf("args\n  %q\nwant\n  %q", ec.Args, want)
	}
	th := agentContainer("cgfreeze-thaw-abcde", "app", thawArgs("containerd://0123", o), false, o)
	if th.Stdin || th.StdinOnce || th.Args[0] != "thaw" || !slices.Contains(th.Args, "containerd://0123") {
		t.Errorf("thaw agent %+v", th)
	}
}

func TestAgentName(t *testing.T) {
	p := runningPod("p", nil, "app")
	seen := map[string]bool{}
	for range 200 {
		n := agentName(p, AgentPrefix)
		if !strings.HasPrefix(n, AgentPrefix) || len(n) != len(AgentPrefix)+5 || strings.HasPrefix(n, ThawPrefix) {
			t.Fatalf("agent name %q", n)
		}
		if seen[n] {
			t.Fatalf("agentName gave %q twice", n)
		}
		seen[n] = true
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: n}})
	}
}

// The patch adds the agent to the pod's ephemeral containers (the fake
// applies it as the API server does, by the name key).
func TestAddAgent(t *testing.T) {
	p := runningPod("p", nil, "app")
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger-x"}}}
	c := fakeCluster(p)
	o := agentOptions{Image: "img"}
	if err := addAgent(context.Background(), c, p, agentContainer("cgfreeze-aaaaa", "app", []string{"x"}, true, o)); err != nil {
		t.Fatal(err)
	}
	got, err := c.CoreV1().Pods(testNS).Get(context.Background(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.EphemeralContainers) != 2 || agentSpec(got, "cgfreeze-aaaaa") == nil || agentSpec(got, "debugger-x") == nil {
		t.Errorf("ephemeral containers after the patch: %+v", got.Spec.EphemeralContainers)
	}
	var patched bool
	for _, a := range c.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "ephemeralcontainers" {
			patched = true
		}
	}
	if !patched {
		t.Errorf("no patch of the ephemeralcontainers subresource: %v", c.Actions())
	}
}

func TestWithPod(t *testing.T) {
	line := []byte(`{"event":"frozen","pid":1,"processes":3}` + "\n")
	got, err := withPod(line, podRef{Name: "w-1", Namespace: "work", Node: "n1", Container: "app", Agent: "cgfreeze-x"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event":"frozen","pid":1,"processes":3,"pod":{"name":"w-1","namespace":"work","node":"n1","container":"app","agent":"cgfreeze-x"}}` + "\n"
	if string(got) != want {
		t.Errorf("withPod\n  %s\nwant\n  %s", got, want)
	}
	if got, err := withPod([]byte(`{}`), podRef{Name: "a", Namespace: "b"}); err != nil || string(got) != `{"pod":{"name":"a","namespace":"b"}}`+"\n" {
		t.Errorf("withPod({}) = %s, %v", got, err)
	}
	for _, bad := range []string{`{"event":"x","pod":1}`, `frozen pid=1`, `{"event":`, `[]`} {
		if _, err := withPod([]byte(bad), podRef{}); err == nil {
			t.Errorf("withPod(%q) accepted", bad)
		}
	}
}

// No field of cgfreeze's events is named pod: the pod object added with
// -o json shadows nothing.
func TestEventHasNoPodField(t *testing.T) {
	typ := reflect.TypeFor[contract.Event]()
	for i := range typ.NumField() {
		if name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); name == "pod" {
			t.Fatalf("contract.Event has a field %q: the plugin's pod object would shadow it", name)
		}
	}
}

func TestProbeWarnings(t *testing.T) {
	p := runningPod("p", nil, "app")
	if w := probeWarnings(p, "", 0); len(w) != 0 {
		t.Errorf("no probe: %q", w)
	}
	p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}}
	if w := probeWarnings(p, "", 0); len(w) != 0 {
		t.Errorf("tcpSocket probe: %q", w)
	}
	p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}},
		PeriodSeconds: 5, FailureThreshold: 4}
	w := probeWarnings(p, "", 0)
	if len(w) != 1 || !strings.Contains(w[0], "httpGet") || !strings.Contains(w[0], "20s") {
		t.Errorf("httpGet probe: %q; want one warning with 20s", w)
	}
	if w := probeWarnings(p, "", 15*time.Second); len(w) != 0 {
		t.Errorf("httpGet probe and --duration 15s (below 20s): %q", w)
	}
	p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}}}
	if w := probeWarnings(p, "", time.Hour); len(w) != 1 || !strings.Contains(w[0], "grpc") || !strings.Contains(w[0], "30s") {
		t.Errorf("grpc probe with defaults: %q; want 30s", w)
	}
}

// runPlugin runs the plugin's command line against the fake cluster.
type pluginRun struct {
	stdout, stderr *syncBuffer
	sigs           chan os.Signal
	code           chan int
	client         *fake.Clientset
}

func startPlugin(t *testing.T, agents *fakeAgents, objs []runtime.Object, args ...string) *pluginRun {
	t.Helper()
	r := &pluginRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}, sigs: make(chan os.Signal, 2), code: make(chan int, 1)}
	r.client = fakeCluster(objs...)
	agents.client = r.client
	hooks := &testHooks{client: r.client, attach: agents}
	go func() { r.code <- run(append(args, "-n", testNS), r.stdout, r.stderr, r.sigs, hooks) }()
	return r
}

func (r *pluginRun) wait(t *testing.T) int {
	t.Helper()
	select {
	case c := <-r.code:
		return c
	case <-time.After(20 * time.Second):
		t.Fatalf("the plugin did not end within 20s\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	return -1
}

func workerObjects(n int) []runtime.Object {
	worker := map[string]string{"app": "worker"}
	objs := []runtime.Object{deployment("worker", worker)}
	for i := range n {
		objs = append(objs, runningPod("worker-"+string(rune('a'+i)), worker, "app"))
	}
	return objs
}

// In text mode each pod's frozen line comes once, with the count that
// the agent's holding event brings after frozen (event contract schema 2).
func TestFreezeTextLineCount(t *testing.T) {
	agents := newFakeAgents()
	r := startPlugin(t, agents, workerObjects(2), "deployment/worker", "--image", "img")
	agents.waitFrozen(t, 2)
	time.Sleep(100 * time.Millisecond)
	r.sigs <- syscall.SIGTERM
	if code := r.wait(t); code != exitOK {
		t.Errorf("exit %d, want 0\nstderr:\n%s", code, r.stderr)
	}
	out := r.stdout.String()
	for _, p := range []string{"worker-a", "worker-b"} {
		if c := strings.Count(out, "pod/"+p+": frozen"); c != 1 {
			t.Errorf("%d frozen lines for %s, want 1:\n%s", c, p, out)
		}
		if !strings.Contains(out, "pod/"+p+": frozen (3 processes, node node-"+p+", container app)") {
			t.Errorf("no frozen line with the count for %s:\n%s", p, out)
		}
	}
}

// Every pod frozen, SIGTERM: every agent's stdin closed, every thawed
// event waited for, exit 0; -o json passes each event with its pod.
func TestFreezeAllThenSignal(t *testing.T) {
	agents := newFakeAgents()
	r := startPlugin(t, agents, workerObjects(3), "deployment/worker", "-o", "json", "--image", "img")
	agents.waitFrozen(t, 3)
	time.Sleep(100 * time.Millisecond)
	for _, p := range []string{"worker-a", "worker-b", "worker-c"} {
		if agents.get(agents.closed, p) {
			t.Errorf("%s: stdin closed while holding", p)
		}
	}
	r.sigs <- syscall.SIGTERM
	if code := r.wait(t); code != exitOK {
		t.Errorf("exit %d, want 0\nstderr:\n%s", code, r.stderr)
	}
	pods := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout.String()), "\n") {
		var e struct {
			Event string `json:"event"`
			Pod   podRef `json:"pod"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %q: %v", line, err)
		}
		if e.Pod.Namespace != testNS || e.Pod.Node != "node-"+e.Pod.Name || e.Pod.Container != "app" || !strings.HasPrefix(e.Pod.Agent, AgentPrefix) {
			t.Errorf("event %q: pod object %+v", line, e.Pod)
		}
		pods[e.Pod.Name] = append(pods[e.Pod.Name], e.Event)
	}
	for _, p := range []string{"worker-a", "worker-b", "worker-c"} {
		if !reflect.DeepEqual(pods[p], []string{"frozen", "holding", "thawed"}) {
			t.Errorf("%s: events %q, want frozen, holding, thawed", p, pods[p])
		}
		if !agents.get(agents.thawed, p) {
			t.Errorf("%s: not thawed", p)
		}
	}
	if !strings.Contains(r.stderr.String(), "all 3 pod(s) frozen") {
		t.Errorf("no summary line on stderr (-o json):\n%s", r.stderr)
	}
}

// A refusal in one pod (exit 8: already frozen by another agent) thaws the
// others, all or nothing, and the plugin exits 1 with that pod's reason.
func TestAllOrNothing(t *testing.T) {
	agents := newFakeAgents()
	agents.behaviour["worker-b"] = agentBehaviour{refuse: contract.ExitAlreadyFrozen, delay: 300 * time.Millisecond}
	r := startPlugin(t, agents, workerObjects(3), "deployment/worker", "--image", "img")
	code := r.wait(t)
	if code != exitFailed {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, r.stdout, r.stderr)
	}
	for _, p := range []string{"worker-a", "worker-c"} {
		if !agents.get(agents.frozen, p) || !agents.get(agents.thawed, p) {
			t.Errorf("%s: frozen %v thawed %v; want both", p, agents.get(agents.frozen, p), agents.get(agents.thawed, p))
		}
	}
	if !strings.Contains(r.stderr.String(), "pod/worker-b: the target is already frozen (exit 8)") {
		t.Errorf("stderr does not give worker-b's reason:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout.String(), "all 3 pod(s) frozen") {
		t.Errorf("a summary of all frozen though one refused:\n%s", r.stdout)
	}
}

// An agent killed whole while it holds its pod (SIGKILL of every process
// of it, exit 137) thawed nothing: the plugin thaws the others (all or
// nothing) and exits 4, not confirmed thawed, pointing at status and thaw.
func TestAgentDiesWhileHolding(t *testing.T) {
	agents := newFakeAgents()
	agents.behaviour["worker-b"] = agentBehaviour{die: true, delay: 300 * time.Millisecond}
	r := startPlugin(t, agents, workerObjects(3), "deployment/worker", "--image", "img")
	code := r.wait(t)
	if code != exitUnconfirmed {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitUnconfirmed, r.stdout, r.stderr)
	}
	for _, p := range []string{"worker-a", "worker-c"} {
		if !agents.get(agents.frozen, p) || !agents.get(agents.thawed, p) {
			t.Errorf("%s: frozen %v thawed %v; want both", p, agents.get(agents.frozen, p), agents.get(agents.thawed, p))
		}
	}
	if !regexp.MustCompile(`pod/worker-b: frozen, then not confirmed thawed: the agent cgfreeze-\w+ exited 137 \(exit 137\); see kubectl freeze status, and kubectl freeze thaw`).MatchString(r.stderr.String()) {
		t.Errorf("stderr does not say worker-b may stay frozen:\n%s", r.stderr)
	}
}

// --allow-partial keeps the others frozen until the signal; exit 0.
func TestAllowPartial(t *testing.T) {
	agents := newFakeAgents()
	agents.behaviour["worker-b"] = agentBehaviour{refuse: contract.ExitAlreadyFrozen}
	r := startPlugin(t, agents, workerObjects(3), "deployment/worker", "--image", "img", "--allow-partial")
	agents.waitFrozen(t, 2)
	time.Sleep(300 * time.Millisecond)
	for _, p := range []string{"worker-a", "worker-c"} {
		if agents.get(agents.closed, p) {
			t.Errorf("%s: thawed though --allow-partial", p)
		}
	}
	r.sigs <- os.Interrupt
	if code := r.wait(t); code != exitOK {
		t.Errorf("exit %d, want 0\nstderr:\n%s", code, r.stderr)
	}
	if !agents.get(agents.thawed, "worker-a") || !agents.get(agents.thawed, "worker-c") {
		t.Errorf("not all thawed after the signal")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{}, {"service/web"}, {"pod/x", "-o", "yaml"}, {"pod/x", "--image-pull-policy", "Sometimes"},
		{"pod/x", "--drop-connections=maybe"}, {"pod/x", "--drop-local-port", "80"}, {"pod/x", "--nope"},
		{"status", "pod/x", "--duration", "1m"},
	} {
		var out, errb syncBuffer
		hooks := &testHooks{client: fakeCluster(), attach: newFakeAgents()}
		if code := run(args, &out, &errb, nil, hooks); code != exitUsage {
			t.Errorf("run(%q) = %d, want %d: %s", args, code, exitUsage, errb.String())
		}
	}
	var out, errb syncBuffer
	hooks := &testHooks{client: fakeCluster(), attach: newFakeAgents()}
	if code := run([]string{"pod/missing", "-n", testNS}, &out, &errb, nil, hooks); code != exitNoTarget {
		t.Errorf("a missing pod: exit %d, want %d: %s", code, exitNoTarget, errb.String())
	}
}

// status is read-only: it lists the agents with what each last said, and
// creates nothing.
func TestStatusReadOnly(t *testing.T) {
	p := runningPod("worker-a", map[string]string{"app": "worker"}, "app")
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{
		agentContainer("cgfreeze-aaaaa", "app", nil, true, agentOptions{}),
		agentContainer("cgfreeze-thaw-bbbbb", "app", nil, false, agentOptions{}),
		{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger-x"}},
	}
	p.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{
		{Name: "cgfreeze-aaaaa", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 17}}},
		{Name: "cgfreeze-thaw-bbbbb", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
	}
	c := fakeCluster(p)
	var out, errb syncBuffer
	code := (&statusCmd{client: c, namespace: testNS, targets: []string{"pod/worker-a"}, json: true, stdout: &out, stderr: &errb}).run(context.Background())
	if code != exitOK {
		t.Fatalf("status exit %d: %s", code, errb.String())
	}
	var reports []agentReport
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r agentReport
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		reports = append(reports, r)
	}
	if len(reports) != 2 || reports[0].Role != "freeze" || reports[0].State != "ended" || reports[0].ExitCode == nil || *reports[0].ExitCode != 17 ||
		reports[1].Role != "thaw" || reports[1].State != "running" {
		t.Errorf("reports %+v", reports)
	}
	for _, a := range c.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" {
			t.Errorf("status made a %s of %s", v, a.GetResource().Resource)
		}
	}
}

// A replica that appears while holding is reported; with --follow it is
// frozen too, and thawed with the others.
func TestFollow(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			agents := newFakeAgents()
			args := []string{"deployment/worker", "--image", "img"}
			if follow {
				args = append(args, "--follow")
			}
			r := startPlugin(t, agents, workerObjects(1), args...)
			agents.waitFrozen(t, 1)
			p := runningPod("worker-new", map[string]string{"app": "worker"}, "app")
			if _, err := r.client.CoreV1().Pods(testNS).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if follow {
				agents.waitFrozen(t, 1)
			} else {
				deadline := time.Now().Add(3 * followEvery)
				for !strings.Contains(r.stdout.String(), "pod/worker-new appeared while holding: not frozen") {
					if time.Now().After(deadline) {
						t.Fatalf("the new pod was not reported within %v:\n%s", 3*followEvery, r.stdout)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			r.sigs <- syscall.SIGTERM
			if code := r.wait(t); code != exitOK {
				t.Errorf("exit %d, want 0\nstderr:\n%s", code, r.stderr)
			}
			if got := agents.get(agents.thawed, "worker-new"); got != follow {
				t.Errorf("the new pod frozen and thawed: %v, want %v\n%s", got, follow, r.stdout)
			}
			if !agents.get(agents.thawed, "worker-a") {
				t.Errorf("worker-a not thawed")
			}
		})
	}
}

// Every flag of every command is in docs/kubectl-freeze.md.
func TestFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/kubectl-freeze.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"freeze", "status", "thaw"} {
		var out, errb syncBuffer
		if code := run([]string{cmd, "--help"}, &out, &errb, nil, nil); code != exitOK {
			t.Fatalf("%s --help: exit %d: %s", cmd, code, errb.String())
		}
		flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z-]+)`).FindAllStringSubmatch(out.String(), -1)
		if len(flags) < 20 {
			t.Fatalf("kubectl freeze %s --help lists only %d flags: %q", cmd, len(flags), out.String())
		}
		for _, m := range flags {
			if !strings.Contains(string(doc), "`"+m[1]) && !strings.Contains(string(doc), ", "+m[1]+"`") {
				t.Errorf("kubectl freeze %s: %s is not in docs/kubectl-freeze.md", cmd, m[1])
			}
		}
	}
}

// An attach that fails before the start word is read is a failure of that
// pod (its agent never freezes): all or nothing thaws the others, exit 1.
func TestAttachFails(t *testing.T) {
	agents := newFakeAgents()
	agents.behaviour["worker-b"] = agentBehaviour{attachErr: errors.New("pods/attach is forbidden")}
	r := startPlugin(t, agents, workerObjects(3), "deployment/worker", "--image", "img")
	if code := r.wait(t); code != exitFailed {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailed, r.stdout, r.stderr)
	}
	for _, p := range []string{"worker-a", "worker-c"} {
		if agents.get(agents.frozen, p) && !agents.get(agents.thawed, p) {
			t.Errorf("%s frozen and not thawed", p)
		}
	}
	if !strings.Contains(r.stderr.String(), "pods/attach is forbidden") || !strings.Contains(r.stderr.String(), "never got the word") {
		t.Errorf("stderr does not say why worker-b failed:\n%s", r.stderr)
	}
}
