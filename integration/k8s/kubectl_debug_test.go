package k8s

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestKubernetesV1 runs the scenarios on a node that sees this host's cgroup
// v1 hierarchies (containerd's cgroupfs driver, QoS cgroups under
// /kubepods): cgfreeze takes the freezer strategy.
func TestKubernetesV1(t *testing.T) {
	n := startNode(t, "v1")
	n.scenario("Inside", func(n *node) { n.inside(sysadmin) })
	n.scenario("DebugTTY", func(n *node) { n.debugTTY(sysadmin) })
	n.scenario("JSONDuration", func(n *node) { n.jsonDuration(sysadmin) })
	n.scenario("SharedPID", func(n *node) { n.sharedPID(sysadmin) })
	n.scenario("DeleteWhileFrozen", func(n *node) { n.deleteWhileFrozen(sysadmin) })
	n.scenario("DropConnections", func(n *node) { n.dropConnections(sysadmin) })
	n.scenario("LostSession", func(n *node) { n.lostSession(sysadmin) })
	n.scenario("StdinLease", func(n *node) { n.stdinLease(sysadmin) })
	n.scenario("LivenessRestart", func(n *node) { n.livenessRestart(sysadmin) })
	n.scenario("ExecProbe", func(n *node) { n.execProbe(sysadmin) })
}

// TestKubernetesV2 runs them on an emulated cgroup v2 node: cgroup2 with
// nsdelegate at /sys/fs/cgroup in the node's mount namespace. A privileged
// agent (--profile=sysadmin) gets no cgroup namespace from containerd and
// freezes the target's cgroup.freeze (direct); an agent with CAP_SYS_ADMIN
// and CAP_SYS_PTRACE only gets one of its own and freezes through a child
// (subtree). Every scenario starts with nsdelegate on, as the previous
// privileged container may have turned it off (runc 1.1).
func TestKubernetesV2(t *testing.T) {
	n := startNode(t, "v2")
	if n.cg2Mount == "" {
		t.Fatal("this host has no cgroup2 hierarchy")
	}
	caps := customCaps(t)
	for _, prof := range []profile{caps, sysadmin} {
		n.scenario("Inside/"+prof.name, func(n *node) { n.inside(prof) })
		n.scenario("DebugTTY/"+prof.name, func(n *node) { n.debugTTY(prof) })
		n.scenario("JSONDuration/"+prof.name, func(n *node) { n.jsonDuration(prof) })
		n.scenario("SharedPID/"+prof.name, func(n *node) { n.sharedPID(prof) })
	}
	n.scenario("DeleteWhileFrozen", func(n *node) { n.deleteWhileFrozen(sysadmin) })
	n.scenario("DropConnections", func(n *node) { n.dropConnections(sysadmin) })
	n.scenario("LivenessRestart", func(n *node) { n.livenessRestart(caps) })
	n.scenario("ExecProbe/caps", func(n *node) { n.execProbe(caps) })
	n.scenario("ExecProbe/sysadmin", func(n *node) { n.execProbe(sysadmin) })
}

// scenario runs one scenario as a subtest on the node, and times it.
func (n *node) scenario(name string, f func(n *node)) {
	n.t.Run(name, func(t *testing.T) {
		sub := *n
		sub.t = t
		if n.mode == "v2" {
			sub.setNsdelegate()
		}
		start := time.Now()
		defer func() { timing(n.mode+": "+name, time.Since(start)) }()
		f(&sub)
		sub.requireNoChild()
	})
}

// podName is a pod name for the scenario, unique in the run.
func (n *node) podName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e6)
}

// ---------------------------------------------------------------- tmux

// tmuxRun runs a shell command line in a new tmux window (a real TTY),
// writing its exit code to the returned file when it ends.
func (n *node) tmuxRun(session, cmdline string) (rcFile string) {
	n.t.Helper()
	rcFile = filepath.Join(n.t.TempDir(), "rc")
	script := fmt.Sprintf("%s; echo $? > %s", cmdline, rcFile)
	out, err := exec.Command("tmux", "-L", n.tmux, "new-session", "-d", "-s", session, "-x", "200", "-y", "50", "sh", "-c", script).CombinedOutput()
	if err != nil {
		n.t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	n.t.Cleanup(func() { _ = exec.Command("tmux", "-L", n.tmux, "kill-session", "-t", session).Run() })
	return rcFile
}

func (n *node) tmuxScreen(session string) string {
	out, _ := exec.Command("tmux", "-L", n.tmux, "capture-pane", "-p", "-J", "-S", "-500", "-t", session).Output()
	return string(out)
}

func (n *node) tmuxWaitFor(session, text string, limit time.Duration) string {
	n.t.Helper()
	var screen string
	n.waitFor(fmt.Sprintf("%q on the terminal", text), limit, func() (bool, error) {
		screen = n.tmuxScreen(session)
		return strings.Contains(screen, text), fmt.Errorf("screen: %q", tail(screen, 1000))
	})
	return screen
}

func (n *node) tmuxKeys(session string, keys ...string) {
	n.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-L", n.tmux, "send-keys", "-t", session}, keys...)...).CombinedOutput(); err != nil {
		n.t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

// attachSettle is how long kubectl takes from its "If you don't see a
// command prompt" line to streaming keys (it prints the line, then
// attaches).
const attachSettle = 2 * time.Second

// tmuxAttached waits until kubectl on the terminal is attached. What the
// agent printed before that is not on the terminal (a TTY has no replay):
// agentLine reads it from the container's log.
func (n *node) tmuxAttached(session string) {
	n.t.Helper()
	n.tmuxWaitFor(session, "If you don't see a command prompt", agentWait)
	time.Sleep(attachSettle)
}

// agentLine waits for a line of the agent's log (its container is named
// freeze-1) that starts with prefix.
func (n *node) agentLine(pod, prefix string) string {
	const name = "freeze-1"
	n.t.Helper()
	var line string
	n.waitFor(fmt.Sprintf("%q in the log of %s/%s", prefix, pod, name), agentWait, func() (bool, error) {
		out, err := n.kubectl("logs", pod, "-c", name)
		// On a TTY the terminal view repaints its status line in place
		// ("\r", erase to the end of the line: ESC [K) and the Ctrl-C is
		// echoed as "^C": an event line is what follows the last of them.
		for _, l := range strings.FieldsFunc(out, func(r rune) bool { return r == '\n' || r == '\r' }) {
			l = strings.TrimPrefix(strings.TrimSpace(l), "\x1b[K")
			if l = strings.TrimPrefix(strings.TrimSpace(l), "^C"); strings.HasPrefix(l, prefix) {
				line = l
				return true, nil
			}
		}
		if err != nil {
			return false, err
		}
		return false, fmt.Errorf("log so far: %q", tail(out, 500))
	})
	return line
}

// waitRC waits for the command started by tmuxRun to end and returns its
// exit code.
func (n *node) waitRC(rcFile string, limit time.Duration) int {
	n.t.Helper()
	code := -1
	n.waitFor("the command on the terminal ending", limit, func() (bool, error) {
		b, err := os.ReadFile(rcFile)
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			return false, err
		}
		code, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil, err
	})
	return code
}

// ---------------------------------------------------------------- scenarios

// inside records what a real ephemeral container sees (docs/kubernetes.md
// quotes it): /proc/1/cgroup (the target's), its own cgroup, and the cgroup
// mounts, from a busybox ephemeral container with the agent's profile.
func (n *node) inside(prof profile) {
	pod := n.podName("inside")
	n.createPod(podSpec(pod, ticker, "", ""))
	id := n.containerID(pod)
	a := append([]string{"debug", "pod/" + pod, "-c", "look", "--image=" + imageWorkload, "--image-pull-policy=Never", "--target=app"}, prof.flags...)
	a = append(a, "--", "/bin/sh", "-c", `echo "/proc/1/cgroup:"; cat /proc/1/cgroup; echo "/proc/self/cgroup:"; cat /proc/self/cgroup; `+
		`echo "cgroup mounts:"; grep -E 'cgroup|/sys/fs' /proc/self/mountinfo; echo "capabilities:"; grep Cap /proc/self/status`)
	n.must(a...)
	if code := n.agentExit(pod, "look", agentWait); code != 0 {
		n.t.Errorf("the looking container exited %d", code)
	}
	out := n.must("logs", pod, "-c", "look")
	n.t.Logf("%s node, %s profile, app container %s:\n%s", n.mode, prof.name, id[:12], out)
	if !strings.Contains(out, id) {
		n.t.Errorf("/proc/1/cgroup does not name the app container %s", id)
	}
}

// debugTTY: the README's example, `kubectl debug -it ... --target=app
// --profile=sysadmin` under a real terminal: the app stops printing, Ctrl-C
// thaws it, kubectl exits 0.
func (n *node) debugTTY(prof profile) {
	pod := n.podName("tty")
	n.createPod(podSpec(pod, ticker, "", ""))
	id := n.containerID(pod)
	n.requireRunningApp(pod)

	cmd := fmt.Sprintf("%s debug -it pod/%s -c freeze-1 --image=%s --image-pull-policy=Never --target=app %s",
		n.kubectlPath(), pod, imageCgfreeze, strings.Join(prof.flags, " "))
	rc := n.tmuxRun("tty", cmd)
	line := n.agentLine(pod, "frozen ")
	n.t.Logf("agent: %s", line)
	if want := "strategy=" + prof.strategy[n.mode]; !strings.Contains(line, want) {
		n.t.Errorf("the frozen line does not say %s", want)
	}
	n.tmuxAttached("tty")
	n.requireHostFrozen(id, true)
	n.requireStopped(pod)

	n.t.Logf("terminal before Ctrl-C:\n%s", strings.TrimSpace(n.tmuxScreen("tty")))
	n.tmuxKeys("tty", "C-c")
	if code := n.waitRC(rc, 30*time.Second); code != 0 {
		n.t.Errorf("kubectl debug -it exited %d after Ctrl-C, want 0; terminal:\n%s", code, n.tmuxScreen("tty"))
	}
	// The session closed with kubectl: the agent's log has what the
	// terminal showed.
	if line := n.agentLine(pod, "thawed "); !strings.Contains(line, "reason=signal") {
		n.t.Errorf("thawed line %q: want reason=signal", line)
	}
	n.requireHostFrozen(id, false)
	n.requireRunningApp(pod)
}

// jsonDuration: the same without a terminal, with -o json and --duration:
// the agent thaws by itself and its container ends with 0.
func (n *node) jsonDuration(prof profile) {
	pod := n.podName("json")
	n.createPod(podSpec(pod, ticker, "", ""))
	id := n.containerID(pod)
	n.debug(pod, "freeze-1", prof, "--duration", "8s", "-o", "json")
	evs := n.agentEvents(pod, "freeze-1", "frozen", agentWait)
	n.requireFrozenEvent(findEvent(evs, "frozen"), prof, id)
	n.requireHostFrozen(id, true)
	n.requireStopped(pod)
	if code := n.agentExit(pod, "freeze-1", 30*time.Second); code != 0 {
		n.t.Errorf("the agent exited %d, want 0", code)
	}
	evs = n.agentEvents(pod, "freeze-1", "thawed", 10*time.Second)
	if e := findEvent(evs, "thawed"); e.Reason != "duration" {
		n.t.Errorf("thawed event %s: want reason duration", e.raw)
	}
	n.requireHostFrozen(id, false)
	n.requireRunningApp(pod)
}

// sharedPID: in a pod that shares its PID namespace PID 1 is the pause
// process; the default refuses (exit 4, in the ephemeral container's
// terminated state) and --container-id with the ID from the pod's status
// freezes the app.
func (n *node) sharedPID(prof profile) {
	pod := n.podName("shared")
	n.createPod(podSpec(pod, ticker, "  shareProcessNamespace: true", ""))
	id := n.containerID(pod)
	n.debug(pod, "refused", prof)
	if code := n.agentExit(pod, "refused", agentWait); code != 4 {
		n.t.Errorf("the default agent in a shared PID namespace exited %d, want 4", code)
	}
	logs := n.must("logs", pod, "-c", "refused")
	if !strings.Contains(logs, id[:12]) {
		n.t.Errorf("the refusal does not list the app container %s:\n%s", id[:12], logs)
	}
	n.requireRunningApp(pod)

	n.debug(pod, "by-id", prof, "--container-id", "containerd://"+id, "--duration", "6s", "-o", "json")
	evs := n.agentEvents(pod, "by-id", "frozen", agentWait)
	n.requireFrozenEvent(findEvent(evs, "frozen"), prof, id)
	n.requireHostFrozen(id, true)
	n.requireStopped(pod)
	if code := n.agentExit(pod, "by-id", 30*time.Second); code != 0 {
		n.t.Errorf("the agent exited %d, want 0", code)
	}
	n.requireRunningApp(pod)
}

// deleteWhileFrozen: the pod deleted while its app is frozen goes away
// within its grace period (the agent thaws at SIGTERM; a frozen app could
// not act on its own SIGTERM).
func (n *node) deleteWhileFrozen(prof profile) {
	pod := n.podName("delete")
	n.createPod(podSpec(pod, ticker, "", ""))
	id := n.containerID(pod)
	n.debug(pod, "freeze-1", prof, "-o", "json")
	n.agentEvents(pod, "freeze-1", "frozen", agentWait)
	n.requireHostFrozen(id, true)
	const grace = 30 * time.Second
	start := time.Now()
	n.must("delete", "pod", pod, "--wait=false")
	n.waitFor("the pod gone", grace, func() (bool, error) {
		_, err := n.pod(pod)
		return err != nil && strings.Contains(err.Error(), "NotFound"), err
	})
	n.t.Logf("the pod was gone %v after the delete (grace period %v)", time.Since(start).Round(100*time.Millisecond), grace)
}

// dropConnections: a client pod talks to a server pod over the bridge; the
// server frozen with --drop-connections: the client sees its connection
// reset at once, instead of waiting on a silent peer.
func (n *node) dropConnections(prof profile) {
	server := n.podName("server")
	n.createPod(podSpec(server, `trap 'exit 0' TERM; nc -ll -p 8080 -e /bin/cat & i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done`, "", ""))
	sp, err := n.pod(server)
	if err != nil {
		n.t.Fatal(err)
	}
	if !strings.HasPrefix(sp.Status.PodIP, "10.213.0.") {
		n.t.Fatalf("the server's pod IP %q is not on the harness's bridge", sp.Status.PodIP)
	}
	client := n.podName("client")
	n.createPod(podSpec(client, fmt.Sprintf(`trap 'exit 0' TERM; (i=0; while :; do i=$((i+1)); echo ping $i; sleep 0.3; done) | nc %s 8080; echo "client: nc exited $?"; while :; do sleep 1; done`, sp.Status.PodIP), "", ""))
	n.waitFor("the client's echoes", 20*time.Second, func() (bool, error) {
		out, err := n.kubectl("logs", client)
		return strings.Contains(out, "ping 3"), err
	})
	id := n.containerID(server)
	n.debug(server, "freeze-1", prof, "--drop-connections", "--duration", "6s", "-o", "json")
	evs := n.agentEvents(server, "freeze-1", "frozen", agentWait)
	n.requireFrozenEvent(findEvent(evs, "frozen"), prof, id)
	evs = n.agentEvents(server, "freeze-1", "connections_dropped", 10*time.Second)
	if e := findEvent(evs, "connections_dropped"); e.Count < 1 {
		n.t.Errorf("connections_dropped %s: want at least the client's connection", e.raw)
	}
	start := time.Now()
	n.waitFor("the client seeing its connection end while the server is frozen", 5*time.Second, func() (bool, error) {
		out, err := n.kubectl("logs", client)
		return strings.Contains(out, "client: nc exited"), err
	})
	n.t.Logf("the client saw the end %v after the connections_dropped event was read", time.Since(start).Round(10*time.Millisecond))
	n.requireHostFrozen(id, true)
	if code := n.agentExit(server, "freeze-1", 30*time.Second); code != 0 {
		n.t.Errorf("the agent exited %d, want 0", code)
	}
	n.requireRunningApp(server)
}

// lostSession: kubectl debug -it killed while the app is frozen. The agent
// does not notice (its TTY stays open in the runtime): the app stays frozen
// until someone attaches and presses Ctrl-C (docs/kubernetes.md).
func (n *node) lostSession(prof profile) {
	pod := n.podName("lost")
	n.createPod(podSpec(pod, ticker, "", ""))
	id := n.containerID(pod)
	cmd := fmt.Sprintf("%s debug -it pod/%s -c freeze-1 --image=%s --image-pull-policy=Never --target=app %s",
		n.kubectlPath(), pod, imageCgfreeze, strings.Join(prof.flags, " "))
	rc := n.tmuxRun("lost", cmd)
	n.agentLine(pod, "frozen ")
	n.tmuxAttached("lost")
	pane, err := exec.Command("tmux", "-L", n.tmux, "list-panes", "-t", "lost", "-F", "#{pane_pid}").Output()
	if err != nil {
		n.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pane)))
	if err != nil {
		n.t.Fatal(err)
	}
	// The pane runs sh -c "kubectl ...; echo $? > rc": kubectl is sh's child.
	kpid := childNamed(pid, "kubectl")
	if kpid == 0 {
		n.t.Fatalf("no kubectl under the pane's process %d", pid)
	}
	if err := syscall.Kill(kpid, syscall.SIGKILL); err != nil {
		n.t.Fatal(err)
	}
	n.waitRC(rc, 10*time.Second)
	time.Sleep(3 * time.Second)
	n.requireHostFrozen(id, true)
	n.requireStopped(pod)
	n.t.Log("kubectl -it killed: the app stays frozen (documented)")

	rc = n.tmuxRun("attach", fmt.Sprintf("%s attach -it pod/%s -c freeze-1", n.kubectlPath(), pod))
	n.tmuxAttached("attach")
	n.t.Logf("kubectl attach -it, before Ctrl-C:\n%s", strings.TrimSpace(n.tmuxScreen("attach")))
	n.tmuxKeys("attach", "C-c")
	code := n.waitRC(rc, 30*time.Second)
	n.t.Logf("kubectl attach -it and Ctrl-C: kubectl exited %d", code)
	if c := n.agentExit(pod, "freeze-1", 30*time.Second); c != 0 {
		n.t.Errorf("the agent exited %d after Ctrl-C through kubectl attach, want 0", c)
	}
	n.requireHostFrozen(id, false)
	n.requireRunningApp(pod)
}

// syncBuffer is a strings.Builder that a command writes to while the test
// reads it.
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

// childNamed is a child of pid whose command is name, or 0.
func childNamed(pid int, name string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c))
		if strings.TrimSpace(string(comm)) == name {
			return c
		}
	}
	return 0
}

// stdinLease: kubectl debug -i (no TTY) with a custom profile that sets
// stdinOnce, and cgfreeze --lease stdin: when kubectl is killed, the runtime
// closes the agent's stdin (stdinOnce, no TTY) and the agent thaws by itself.
func (n *node) stdinLease(prof profile) {
	pod := n.podName("lease")
	n.createPod(podSpec(pod, ticker, "", ""))
	id := n.containerID(pod)
	custom := filepath.Join(n.t.TempDir(), "stdin-once.yaml")
	if err := os.WriteFile(custom, []byte("stdinOnce: true\n"), 0o644); err != nil {
		n.t.Fatal(err)
	}
	args := append([]string{"debug", "-i", "pod/" + pod, "-c", "freeze-1", "--image=" + imageCgfreeze, "--image-pull-policy=Never",
		"--target=app", "--custom=" + custom}, prof.flags...)
	args = append(args, "--arguments-only", "--", "--lease", "stdin", "-o", "json")
	cmd := n.kubectlCmd(n.t.Context(), args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	defer func() { _ = stdin.Close() }()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	// What the agent prints before kubectl attaches is not replayed: the
	// agent's log has it.
	n.agentLine(pod, `{"event":"frozen"`)
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	n.waitFor("kubectl debug -i attached", agentWait, func() (bool, error) {
		return strings.Contains(stderr.String(), "If you don't see a command prompt"), fmt.Errorf("stderr: %q", stderr.String())
	})
	time.Sleep(attachSettle)
	n.requireHostFrozen(id, true)
	n.t.Logf("pod spec's ephemeral container has stdinOnce: %s", n.must("get", "pod", pod, "-o", "jsonpath={.spec.ephemeralContainers[0].stdinOnce}"))
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	start := time.Now()
	code := n.agentExit(pod, "freeze-1", 30*time.Second)
	n.t.Logf("kubectl killed: the agent ended %v later with %d", time.Since(start).Round(100*time.Millisecond), code)
	if code != 0 {
		n.t.Errorf("the agent exited %d, want 0 (thawed at the end of its stdin)", code)
	}
	evs := n.agentEvents(pod, "freeze-1", "thawed", 10*time.Second)
	if e := findEvent(evs, "thawed"); e.Reason != "stdin" {
		n.t.Errorf("thawed event %s: want reason stdin", e.raw)
	}
	n.requireHostFrozen(id, false)
	n.requireRunningApp(pod)
}

// livenessRestart: an httpGet liveness probe fails while the app is frozen;
// the kubelet restarts the container, the new one runs, and the agent (in a
// pod that shares its PID namespace, frozen by --container-id, so it does
// not die with the old container) ends by itself: its target is gone.
func (n *node) livenessRestart(prof profile) {
	pod := n.podName("liveness")
	id := n.probedPod(pod, `mkdir -p /tmp/www && echo ok > /tmp/www/index.html && httpd -p 8080 -h /tmp/www`,
		"httpGet: {path: /index.html, port: 8080}")
	n.debug(pod, "freeze-1", prof, "--container-id", "containerd://"+id, "-o", "json")
	evs := n.agentEvents(pod, "freeze-1", "frozen", agentWait)
	n.requireFrozenEvent(findEvent(evs, "frozen"), prof, id)
	start := time.Now()
	var newID string
	n.waitFor("the kubelet restarting the frozen app", 60*time.Second, func() (bool, error) {
		p, err := n.pod(pod)
		if err != nil {
			return false, err
		}
		c := p.container("app")
		if c == nil || c.RestartCount < 1 || c.State.Running == nil {
			return false, fmt.Errorf("app: %+v", c)
		}
		newID = strings.TrimPrefix(c.ContainerID, "containerd://")
		return true, nil
	})
	n.t.Logf("the kubelet restarted the app %v after the freeze", time.Since(start).Round(100*time.Millisecond))
	if newID == id {
		n.t.Fatalf("the restarted app has the old container ID %s", id)
	}
	n.requireRunningApp(pod)
	n.requireHostFrozen(newID, false)
	code := n.agentExit(pod, "freeze-1", 30*time.Second)
	out, _ := n.kubectl("logs", pod, "-c", "freeze-1")
	n.t.Logf("the agent ended with %d:\n%s", code, strings.TrimSpace(out))
	// The agent ends by itself either way: the old container's cgroup
	// emptied (13, target_gone) or, on v1, runc thawed the paused
	// container before it killed it and the hold saw that first (14,
	// thawed_by_other: cgfreeze does not fight its runtime).
	want := map[int]string{13: "target_gone", 14: "thawed_by_other"}
	if _, ok := want[code]; !ok || (code == 14 && n.mode != "v1") {
		n.t.Errorf("the agent exited %d when its target went away, want 13 (or 14 on v1) (docs/usage.md)", code)
	}
	if e := findEvent(parseEvents(out), "ended"); e == nil || e.Reason != want[code] {
		n.t.Errorf("no ended event with reason %q", want[code])
	}
}

// execProbe: an exec liveness probe of the frozen app, failing after 2
// probes of 2 s, does not get it restarted during a freeze of 16 s
// (docs/kubernetes.md, "Probes"). How the probe's exec goes depends on the
// strategy, and the test pins that too, so that a runtime or kubelet that
// changes it shows here: the freezer (v1) and direct (v2) strategies
// freeze the container's own cgroup, runc reads it as paused and refuses
// the exec ("cannot exec in a paused container"), which the kubelet
// reports as an unknown result, not a failure; the subtree strategy
// leaves the container's cgroup.freeze at 0, so runc execs, and the hold
// moves the probe's process into the frozen child (a repaired event, what
// joined), where it waits for the thaw without the kubelet counting a
// failure.
func (n *node) execProbe(prof profile) {
	pod := n.podName("execprobe")
	id := n.probedPod(pod, "mkdir -p /tmp && touch /tmp/alive", "exec: {command: [cat, /tmp/alive]}")
	// --container-id in a pod that shares its PID namespace: were the app
	// restarted, the agent would outlive it and end with exit 13.
	n.debug(pod, "freeze-1", prof, "--container-id", "containerd://"+id, "--duration", "16s", "-o", "json")
	evs := n.agentEvents(pod, "freeze-1", "frozen", agentWait)
	n.requireFrozenEvent(findEvent(evs, "frozen"), prof, id)
	code := n.agentExit(pod, "freeze-1", 60*time.Second)
	out, _ := n.kubectl("logs", pod, "-c", "freeze-1")
	kubeEvents, _ := n.kubectl("get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "custom-columns=REASON:.reason,MESSAGE:.message")
	n.t.Logf("the agent ended with %d:\n%s\nthe pod's events:\n%s", code, strings.TrimSpace(out), kubeEvents)
	if c := n.appStatus(pod); c.RestartCount != 0 || strings.TrimPrefix(c.ContainerID, "containerd://") != id {
		n.t.Errorf("the kubelet restarted the frozen app (%d restarts): an exec liveness probe failed during the freeze", c.RestartCount)
	}
	evs = parseEvents(out)
	if e := findEvent(evs, "thawed"); code != 0 || e == nil || e.Reason != "duration" {
		n.t.Errorf("the agent exited %d, want 0 after a thawed event with reason duration", code)
	}
	n.requireRunningApp(pod)
	// Either proves that the probe ran during the freeze.
	if prof.strategy[n.mode] == "subtree" {
		if !strings.Contains(out, `"what":"joined"`) {
			n.t.Error("no repaired event with what joined: the probe's process was not moved into the frozen child")
		}
	} else if !strings.Contains(kubeEvents, "cannot exec in a paused container") {
		n.t.Error(`no "cannot exec in a paused container" in the pod's events: runc did not refuse the probe's exec`)
	}
}

// probedPod creates a pod whose app runs setup, then ticks, with a
// liveness probe (handler: its YAML line) every 2 s that restarts the app
// after 2 failures; the pod shares its PID namespace (an agent started
// with --container-id outlives a restarted app). It returns the app's
// container ID once the probe has passed for a few seconds.
func (n *node) probedPod(pod, setup, handler string) string {
	n.t.Helper()
	script := `trap 'exit 0' TERM; ` + setup + `; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done`
	probe := `    livenessProbe:
      ` + handler + `
      periodSeconds: 2
      timeoutSeconds: 1
      failureThreshold: 2`
	n.createPod(podSpec(pod, script, "  shareProcessNamespace: true\n  terminationGracePeriodSeconds: 5", probe))
	id := n.containerID(pod)
	time.Sleep(3 * time.Second) // the probe passes first
	if c := n.appStatus(pod); c.RestartCount != 0 {
		n.t.Fatalf("the app restarted %d times before the freeze", c.RestartCount)
	}
	return id
}

// appStatus is the app container's status; the test fails without one.
func (n *node) appStatus(pod string) *containerStatus {
	n.t.Helper()
	p, err := n.pod(pod)
	if err != nil {
		n.t.Fatal(err)
	}
	c := p.container("app")
	if c == nil {
		n.t.Fatalf("pod %s has no app container status", pod)
	}
	return c
}
