package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kubectl-freeze's status and thaw on the real cluster (a freeze that dead
// agents left), and --drop-connections across a Deployment's pods.

// Bounds of these scenarios.
const (
	// agentKillWait bounds the runtime's report of a killed agent.
	agentKillWait = 30 * time.Second
	// thawCmdWait bounds `kubectl freeze thaw` (a thaw agent per pod:
	// created, started, ended).
	thawCmdWait = 90 * time.Second
	// resetWait bounds the peer's sight of the reset once the plugin
	// reported the connections dropped.
	resetWait = 5 * time.Second
	// connectWait bounds the replicas' connections to the test's listener.
	connectWait = 30 * time.Second
)

// gateway is the host's address on the cluster's bridge (cluster.sh's
// GATEWAY): the pods reach the test process there.
const gateway = "10.213.0.1"

// statusReport is one line of `kubectl freeze status -o json`.
type statusReport struct {
	Event    string `json:"event"`
	Role     string `json:"role"`
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
	Last     *struct {
		Event  string `json:"event"`
		Reason string `json:"reason"`
	} `json:"last"`
	Pod struct {
		Name, Node, Container, Agent string
	} `json:"pod"`
}

// pluginStatus runs `kubectl freeze status deployment/NAME -o json` and
// checks that it changed no pod's ephemeral containers.
func (n *node) pluginStatus(plugin, deployment string) []statusReport {
	n.t.Helper()
	before := n.ephemeralNames(deployment)
	out, err := exec.Command(plugin, "status", "deployment/"+deployment, "-o", "json", "--kubeconfig="+n.kubeconfig).Output()
	if err != nil {
		n.t.Fatalf("kubectl freeze status: %v\n%s", err, out)
	}
	n.t.Logf("kubectl freeze status -o json:\n%s", out)
	var reports []statusReport
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r statusReport
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			n.t.Fatalf("a status line is not JSON: %v: %q", err, l)
		}
		reports = append(reports, r)
	}
	if after := n.ephemeralNames(deployment); after != before {
		n.t.Errorf("status changed the pods' ephemeral containers: %q, then %q", before, after)
	}
	return reports
}

// ephemeralNames lists the ephemeral containers of a Deployment's pods.
func (n *node) ephemeralNames(deployment string) string {
	n.t.Helper()
	return n.must("get", "pods", "-l", "app="+deployment, "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.ephemeralContainers[*].name}{" "}{end}`)
}

// reportOf is the status line of pod's agent named agent.
func reportOf(reports []statusReport, pod, agent string) *statusReport {
	for i := range reports {
		if reports[i].Pod.Name == pod && reports[i].Pod.Agent == agent {
			return &reports[i]
		}
	}
	return nil
}

// killAgent SIGKILLs every process of an agent's container at once,
// through containerd (runc kill --all freezes the container's cgroup
// before it signals, so no process of the agent sees another die): no
// part of the agent lives to thaw the target, and its mark stays.
func (n *node) killAgent(pod, agent string) {
	n.t.Helper()
	p, err := n.pod(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	c := p.container(agent)
	if c == nil || c.ContainerID == "" {
		n.t.Fatalf("pod %s has no agent %s with an ID", pod, agent)
	}
	id := strings.TrimPrefix(c.ContainerID, "containerd://")
	sock := filepath.Join(scratch, "containerd", "containerd.sock")
	if out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "tasks", "kill", "--all", "--signal", "SIGKILL", id).CombinedOutput(); err != nil {
		n.t.Fatalf("killing the agent %s of %s (%s): %v: %s", agent, pod, id, err, out)
	}
}

// pluginStatusThaw: while a Deployment is frozen, status lists each pod's
// agent as frozen and creates nothing; then every agent is SIGKILLed
// whole, which leaves the replicas frozen with cgfreeze's mark (no part of
// the agent lived to thaw); status shows them ended (137), still frozen;
// `kubectl freeze thaw deployment/...` recovers every replica (event
// recovered), their output resumes, and status shows the thaw agents ended
// 0.
func (n *node) pluginStatusThaw(plugin string) {
	name := n.podName("worker")
	pods := n.createWorker(name, 2)
	r := n.startPlugin(plugin, "deployment/"+name)
	frozen := r.waitFrozen(pods)

	reports := n.pluginStatus(plugin, name)
	for _, p := range pods {
		rep := reportOf(reports, p, frozen[p].Pod.Agent)
		switch {
		case rep == nil:
			n.t.Errorf("status does not list %s's agent %s", p, frozen[p].Pod.Agent)
		case rep.Role != "freeze" || rep.State != "frozen" || rep.Last == nil || rep.Last.Event != "holding" || rep.Pod.Container != "app" || rep.Pod.Node == "":
			n.t.Errorf("status of %s's agent while frozen: %+v (last %+v), want role freeze, state frozen, last event holding", p, rep, rep.Last)
		}
	}
	if len(reports) != len(pods) {
		n.t.Errorf("status lists %d agents, want one per pod (%d)", len(reports), len(pods))
	}

	// Dead agents: each agent's processes SIGKILLed together.
	for _, p := range pods {
		n.killAgent(p, frozen[p].Pod.Agent)
	}
	for _, p := range pods {
		if code := n.agentExit(p, frozen[p].Pod.Agent, agentKillWait); code != 137 {
			n.t.Errorf("the killed agent of %s exited %d, want 137 (SIGKILL)", p, code)
		}
	}
	code, _ := r.wait(pluginExitWait)
	n.t.Logf("the plugin exited %d once its agents were killed\nstderr:\n%s", code, r.stderrText())
	if stderr := r.stderrText(); code != 4 || !strings.Contains(stderr, "not confirmed thawed") {
		n.t.Errorf("the plugin exited %d once its agents were killed while holding, want 4 (not confirmed thawed)\nstderr:\n%s", code, stderr)
	}
	for _, p := range pods {
		n.requireStopped(p)
	}
	reports = n.pluginStatus(plugin, name)
	for _, p := range pods {
		rep := reportOf(reports, p, frozen[p].Pod.Agent)
		if rep == nil || rep.State != "ended" || rep.ExitCode == nil || *rep.ExitCode != 137 || rep.Last == nil || rep.Last.Event != "holding" {
			n.t.Errorf("status of %s's killed agent: %+v, want state ended, exit 137, last event holding", p, rep)
		}
	}

	// thaw recovers them.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), thawCmdWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, plugin, "thaw", "deployment/"+name, "-o", "json", "--kubeconfig="+n.kubeconfig,
		"--image="+imageCgfreeze, "--image-pull-policy=Never").Output()
	if err != nil {
		n.t.Fatalf("kubectl freeze thaw: %v\n%s", err, out)
	}
	n.t.Logf("kubectl freeze thaw took %v:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	recovered := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var e pluginEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			n.t.Fatalf("a thaw line is not JSON: %v: %q", err, l)
		}
		if e.Event == "recovered" {
			recovered[e.Pod.Name] = e.Pod.Agent
		}
	}
	for _, p := range pods {
		if recovered[p] == "" {
			n.t.Errorf("no recovered event for %s: %v", p, recovered)
		}
		n.requireRunningApp(p)
	}
	reports = n.pluginStatus(plugin, name)
	for _, p := range pods {
		rep := reportOf(reports, p, recovered[p])
		if rep == nil || rep.Role != "thaw" || rep.State != "ended" || rep.ExitCode == nil || *rep.ExitCode != 0 || rep.Last == nil || rep.Last.Event != "recovered" {
			n.t.Errorf("status of %s's thaw agent: %+v, want role thaw, state ended, exit 0, last event recovered", p, rep)
		}
	}
}

// peer is the test's TCP listener on the bridge: the replicas connect to
// it, and it records how each connection ended.
type peer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn  // by the pod's IP
	ended map[string]error     // by the pod's IP: the read's error
	at    map[string]time.Time // by the pod's IP: when the read failed
	wg    sync.WaitGroup
}

func newPeer() (*peer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	if err != nil {
		return nil, err
	}
	p := &peer{ln: ln, conns: map[string]net.Conn{}, ended: map[string]error{}, at: map[string]time.Time{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ip := c.RemoteAddr().(*net.TCPAddr).IP.String()
			p.mu.Lock()
			p.conns[ip] = c
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						p.mu.Lock()
						p.ended[ip] = err
						p.at[ip] = time.Now()
						p.mu.Unlock()
						return
					}
				}
			}()
		}
	}()
	return p, nil
}

// state says whether the pod at ip is connected, and how its connection
// ended (nil while open).
func (p *peer) state(ip string) (connected bool, ended error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, connected = p.conns[ip]
	return connected, p.ended[ip]
}

// endedAt is when the connection from ip ended.
func (p *peer) endedAt(ip string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at[ip]
}

func (p *peer) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// pluginDropConnections: each replica of a Deployment holds a TCP
// connection to the test process (on the bridge); `kubectl freeze
// deployment/x --drop-connections` freezes them all and each agent aborts
// its pod's connection: the test sees every connection reset while the
// replicas are still frozen, and the plugin's output has a
// connections_dropped event per pod naming that connection.
func (n *node) pluginDropConnections(plugin string) {
	pr, err := newPeer()
	if err != nil {
		n.t.Fatalf("listening on the bridge's %s: %v", gateway, err)
	}
	defer pr.close()
	port := pr.ln.Addr().(*net.TCPAddr).Port
	name := n.podName("worker")
	script := fmt.Sprintf(`trap 'exit 0' TERM; (i=0; while :; do i=$((i+1)); echo ping $i; sleep 0.3; done) | nc %s %d & i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done`, gateway, port)
	pods := n.createDeployment(name, 2, script, "")
	ips := map[string]string{}
	for _, p := range pods {
		st, err := n.pod(p)
		if err != nil {
			n.t.Fatal(err)
		}
		ips[p] = st.Status.PodIP
		n.waitFor(p+" connected to the test's listener", connectWait, func() (bool, error) {
			ok, ended := pr.state(st.Status.PodIP)
			if ended != nil {
				return false, fmt.Errorf("its connection ended before the freeze: %w", ended)
			}
			return ok, fmt.Errorf("no connection from %s", st.Status.PodIP)
		})
	}

	r := n.startPlugin(plugin, "deployment/"+name, "--drop-connections")
	got := r.waitEvents(pods, "frozen", "connections_dropped")
	for _, p := range pods {
		e := got["connections_dropped"][p]
		want := net.JoinHostPort(gateway, fmt.Sprint(port))
		found := false
		for _, c := range e.Connections {
			found = found || c.Remote == want
		}
		if e.Count == nil || *e.Count < 1 || !found {
			n.t.Errorf("connections_dropped of %s: %s, want the connection to %s", p, e.raw, want)
		}
		if e.Pod.Node == "" || e.Pod.Container != "app" {
			n.t.Errorf("connections_dropped of %s: pod object %+v", p, e.Pod)
		}
		n.waitFor(p+"'s connection reset at the test's end", resetWait, func() (bool, error) {
			_, ended := pr.state(ips[p])
			return ended != nil, fmt.Errorf("the connection from %s is open", ips[p])
		})
		if _, ended := pr.state(ips[p]); !errors.Is(ended, syscall.ECONNRESET) {
			n.t.Errorf("%s's connection ended with %v, want a reset (ECONNRESET)", p, ended)
		}
		n.t.Logf("%s: the test saw its connection reset %v after the agent's connections_dropped event", p, pr.endedAt(ips[p]).Sub(e.Time).Round(100*time.Microsecond))
	}
	for _, p := range pods {
		n.requireStopped(p) // the reset came while frozen
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := r.wait(pluginExitWait); code != 0 {
		n.t.Errorf("the plugin exited %d after SIGTERM, want 0\nstderr:\n%s", code, r.stderrText())
	}
	for _, p := range pods {
		n.requireRunningApp(p)
	}
}
