package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// kubectl-freeze across two nodes: a second kubelet on this machine
// (cluster.sh node2), a Deployment spread over both.

// secondNode is the second node's name (cluster.sh's NODE2): it resolves
// to 127.0.0.1 through a line cluster.sh adds to /etc/hosts and removes.
const secondNode = "cgfreeze-itest-node2"

// startSecondNode adds the second node to the v1 cluster and removes it
// when the test ends (its pods are deleted before, by the cleanups the
// test registers later); it fails the test if anything of it is left.
// An interrupt tears it down with the cluster (cluster.sh down), and the
// next run's `node2 up` (and `up`) sweeps what a killed run left.
func (n *node) startSecondNode() {
	n.t.Helper()
	env := append(os.Environ(), "CGFREEZE_K8S_SCRATCH="+scratch, "CGFREEZE_ITEST_LOCKED=1")
	start := time.Now()
	n.t.Cleanup(func() {
		if n.t.Failed() {
			for _, l := range []string{"kubelet2", "containerd2"} {
				b, _ := os.ReadFile(filepath.Join(scratch, "logs", l+".log"))
				n.t.Logf("---- %s.log (tail)\n%s", l, tail(string(b), 2500))
			}
		}
		start := time.Now()
		cmd := exec.Command("bash", clusterScript, "node2", "down")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			n.t.Errorf("cluster.sh node2 down: %v\n%s", err, out)
		}
		timing(n.mode+": second node down", time.Since(start))
		n.requireNoSecondNode()
	})
	cmd := exec.Command("bash", clusterScript, "node2", "up", binDir, imageDir)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("cluster.sh node2 up: %v\n%s", err, tail(string(out), 4000))
	}
	timing(n.mode+": second node up (containerd, images, kubelet, node Ready)", time.Since(start))
}

// requireNoSecondNode checks that nothing of the second node is left: its
// kubelet and containerd, cgroups, bridge, /etc/hosts line, directory and
// Node object.
func (n *node) requireNoSecondNode() {
	n.t.Helper()
	for _, pid := range []string{"kubelet2", "containerd2", "keeper2"} {
		if _, err := os.Stat(filepath.Join(scratch, "pids", pid)); err == nil {
			n.t.Errorf("the second node's %s is still recorded as running", pid)
		}
	}
	if out, _ := exec.Command("pgrep", "-f", filepath.Join(scratch, "node2")).Output(); len(out) > 0 {
		n.t.Errorf("processes of the second node are left: %s", strings.Fields(string(out)))
	}
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + secondNode); len(dirs) > 0 {
		n.t.Errorf("the second node's cgroups are left: %v", dirs)
	}
	if err := exec.Command("ip", "link", "show", "cgfz1").Run(); err == nil {
		n.t.Errorf("the second node's bridge cgfz1 is left")
	}
	if b, _ := os.ReadFile("/etc/hosts"); strings.Contains(string(b), secondNode) {
		n.t.Errorf("/etc/hosts still names %s:\n%s", secondNode, b)
	}
	if _, err := os.Stat(filepath.Join(scratch, "node2")); err == nil {
		n.t.Errorf("%s is left", filepath.Join(scratch, "node2"))
	}
	if out, err := n.kubectl("get", "nodes", "-o", "name"); err != nil || strings.Contains(out, secondNode) {
		n.t.Errorf("the Node object %s is left (or nodes unreadable: %v): %s", secondNode, err, out)
	}
}

// pluginTwoNodes: a Deployment of 3 replicas spread over the two nodes
// (topology spread on kubernetes.io/hostname, maxSkew 1, DoNotSchedule);
// `kubectl freeze deployment/x` freezes the replicas on both (the events
// name both nodes, every replica's output stops); SIGTERM thaws them all
// and the plugin exits 0.
func (n *node) pluginTwoNodes(plugin string) {
	first, err := os.ReadFile(filepath.Join(scratch, "node"))
	if err != nil {
		n.t.Fatal(err)
	}
	firstNode := strings.TrimSpace(string(first))
	n.startSecondNode()
	name := n.podName("worker")
	spread := fmt.Sprintf(`      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {app: %s}`, name)
	pods := n.createDeployment(name, 3, ticker, spread)
	placed := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(n.must("get", "pods", "-l", "app="+name, "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}`)), "\n") {
		pod, node, _ := strings.Cut(l, "=")
		placed[pod] = node
	}
	n.t.Logf("replicas by node: %v", placed)
	onNodes := map[string]int{}
	for _, node := range placed {
		onNodes[node]++
	}
	if onNodes[firstNode] == 0 || onNodes[secondNode] == 0 {
		n.t.Fatalf("the replicas are not spread over %s and %s: %v", firstNode, secondNode, placed)
	}

	start := time.Now()
	r := n.startPlugin(plugin, "deployment/"+name)
	frozen := r.waitFrozen(pods)
	n.t.Logf("all %d replicas on %d nodes frozen %v after the plugin started", len(pods), len(onNodes), time.Since(start).Round(time.Millisecond))
	var seen []string
	for _, p := range pods {
		e := frozen[p]
		if e.Pod.Node != placed[p] {
			n.t.Errorf("the frozen event of %s names node %q, the pod runs on %q", p, e.Pod.Node, placed[p])
		}
		seen = append(seen, e.Pod.Node)
	}
	sort.Strings(seen)
	n.t.Logf("frozen events' pod.node: %v", seen)
	for _, p := range pods {
		n.requireStopped(p)
	}
	n.t.Logf("SIGTERM: every replica on both nodes thawed and the plugin ended in %v", r.stopAllThawed(pods).Round(time.Millisecond))
	for _, p := range pods {
		n.requireRunningApp(p)
	}
}
