package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The fake cluster of the unit tests: client-go's fake clientset, whose
// pods' ephemeral containers run as soon as they are added, and fake
// agents behind the Attacher.

const testNS = "work"

// runningPod is a running pod with containers (the first one's ID is
// containerd://<name>-<container>).
func runningPod(name string, labels map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: "node-" + name},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c,
			ContainerID: "containerd://" + name + "-" + c,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	return p
}

func deployment(name string, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}}}
}

// fakeCluster returns a fake clientset whose ephemeral containers are
// reported running once added.
func fakeCluster(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	c.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		g, ok := a.(k8stesting.GetAction)
		if !ok || a.GetSubresource() != "" {
			return false, nil, nil
		}
		obj, err := c.Tracker().Get(gvr, g.GetNamespace(), g.GetName())
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod).DeepCopy()
		for _, ec := range p.Spec.EphemeralContainers {
			if agentStatus(p, ec.Name) == nil {
				p.Status.EphemeralContainerStatuses = append(p.Status.EphemeralContainerStatuses, corev1.ContainerStatus{
					Name: ec.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}})
			}
		}
		return true, p, nil
	})
	return c
}

// agentBehaviour is what a fake agent does once told to start.
type agentBehaviour struct {
	// refuse: the error event with this exit code, then the end.
	refuse int
	// delay before it answers the start.
	delay time.Duration
	// attachErr: the attach fails at once (an API server or kubelet that
	// refuses it), before anything is read.
	attachErr error
	// die: once frozen, the agent is killed whole (SIGKILL, exit 137):
	// its stream ends without a thaw and its status says terminated.
	die bool
}

// fakeAgents plays cgfreeze behind the attach stream: "waiting" is in
// the log before anyone attaches (not on the stream); the first line on
// stdin starts it; EOF thaws it.
type fakeAgents struct {
	mu        sync.Mutex
	behaviour map[string]agentBehaviour // by pod
	started   map[string]bool
	frozen    map[string]bool
	closed    map[string]bool // stdin reached EOF
	thawed    map[string]bool
	attaches  map[string]int
	frozenCh  chan string
	// client is the fake cluster (startPlugin sets it): a dying agent
	// reports its end there.
	client *fake.Clientset
}

func newFakeAgents() *fakeAgents {
	return &fakeAgents{behaviour: map[string]agentBehaviour{}, started: map[string]bool{}, frozen: map[string]bool{},
		closed: map[string]bool{}, thawed: map[string]bool{}, attaches: map[string]int{}, frozenCh: make(chan string, 16)}
}

func (f *fakeAgents) Attach(ctx context.Context, ns, pod, container string, stdin io.Reader, stdout, stderr io.Writer) error {
	f.mu.Lock()
	b := f.behaviour[pod]
	f.attaches[pod]++
	f.mu.Unlock()
	if b.attachErr != nil {
		return b.attachErr
	}
	if !strings.HasPrefix(container, AgentPrefix) {
		return fmt.Errorf("attach to %q, not an agent", container)
	}
	in := bufio.NewReader(stdin)
	word, err := in.ReadString('\n')
	if err != nil {
		f.set(f.closed, pod)
		fmt.Fprintf(stdout, `{"event":"not_started","reason":"stdin","exit_code":17}`+"\n")
		return nil
	}
	if word != "start\n" {
		return fmt.Errorf("first word %q, want start", word)
	}
	f.set(f.started, pod)
	time.Sleep(b.delay)
	if b.refuse != 0 {
		fmt.Fprintf(stdout, `{"event":"error","error":"the target is already frozen","exit_code":%d}`+"\n", b.refuse)
		return nil
	}
	// Event contract schema 2: the count comes in holding, after frozen.
	fmt.Fprintf(stdout, `{"event":"frozen","schema":2,"pid":1,"cgroup":"/","version":2,"strategy":"subtree","elapsed_ms":4.2}`+"\n")
	fmt.Fprintf(stdout, `{"event":"holding","schema":2,"pid":1,"cgroup":"/","version":2,"strategy":"subtree","processes":3}`+"\n")
	f.set(f.frozen, pod)
	f.frozenCh <- pod
	if b.die {
		return f.terminate(pod, container, 137)
	}
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break
		}
		if line != "beat\n" {
			return fmt.Errorf("heartbeat %q, want beat", line)
		}
	}
	f.set(f.closed, pod)
	fmt.Fprintf(stdout, `{"event":"thawed","pid":1,"cgroup":"/","version":2,"strategy":"subtree","processes":3,"reason":"stdin","held_ms":10}`+"\n")
	f.set(f.thawed, pod)
	return nil
}

// terminate records the agent's end with code in the pod's status, as the
// kubelet would.
func (f *fakeAgents) terminate(pod, container string, code int32) error {
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	obj, err := f.client.Tracker().Get(gvr, testNS, pod)
	if err != nil {
		return err
	}
	p := obj.(*corev1.Pod).DeepCopy()
	p.Status.EphemeralContainerStatuses = append(p.Status.EphemeralContainerStatuses, corev1.ContainerStatus{Name: container,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}})
	return f.client.Tracker().Update(gvr, p, testNS)
}

func (f *fakeAgents) set(m map[string]bool, pod string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m[pod] = true
}

func (f *fakeAgents) get(m map[string]bool, pod string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[pod]
}

// waitFrozen waits until n agents froze.
func (f *fakeAgents) waitFrozen(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-f.frozenCh:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d agents froze within 10s", i, n)
		}
	}
}

// syncBuffer is an output the test reads while the plugin writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
