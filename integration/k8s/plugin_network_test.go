package k8s

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// apiServerAddr is where cluster.sh's API server listens.
const apiServerAddr = "127.0.0.1:16443"

// heartbeatThawWait bounds the agents' thaw once the plugin's heartbeats
// stop: the 30 s bound, the 5 s between heartbeats, and slack.
const heartbeatThawWait = 60 * time.Second

// blackhole is a TCP proxy to the API server that can stop forwarding
// without closing anything: a network lost without a reset, as a
// suspended laptop or a dropped VPN leaves it.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
	held  chan struct{} // closed at the end: held copies give up
}

func newBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &blackhole{ln: ln, held: make(chan struct{})}
	go b.accept()
	return b, nil
}

func (b *blackhole) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", apiServerAddr)
		if err != nil {
			_ = c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c, up)
		b.mu.Unlock()
		go b.pipe(c, up)
		go b.pipe(up, c)
	}
}

// pipe copies until the cut; after it, it neither forwards nor closes.
func (b *blackhole) pipe(from, to net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := from.Read(buf)
		if b.isCut() {
			<-b.held
			return
		}
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			// A close before the cut is forwarded as one.
			if tc, ok := to.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func (b *blackhole) isCut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cut
}

func (b *blackhole) cutNow() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = true
}

// close ends the proxy and every connection through it.
func (b *blackhole) close() {
	_ = b.ln.Close()
	close(b.held)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.Close()
	}
}

// pluginLostNetwork: the plugin reaches the API server through a proxy
// that stops forwarding without a reset; the agent gets no heartbeat and
// thaws after the heartbeat bound. The time is measured.
func (n *node) pluginLostNetwork(plugin string) {
	name := n.podName("worker")
	pods := n.createWorker(name, 1)
	bh, err := newBlackhole()
	if err != nil {
		n.t.Fatal(err)
	}
	defer bh.close()
	r := n.startPlugin(plugin, "deployment/"+name, "--server=https://"+bh.ln.Addr().String())
	r.waitFrozen(pods)
	n.requireStopped(pods[0])
	tick, err := n.lastTick(pods[0])
	if err != nil {
		n.t.Fatal(err)
	}
	cut := time.Now()
	bh.cutNow()
	n.waitFor(pods[0]+" printing again after the network was cut", heartbeatThawWait, func() (bool, error) {
		t, err := n.lastTick(pods[0])
		return err == nil && t > tick, err
	})
	took := time.Since(cut)
	n.t.Logf("%s thawed by itself %v after the network was cut (heartbeat bound 30 s, a heartbeat every 5 s)", pods[0], took.Round(100*time.Millisecond))
	if took < 25*time.Second {
		n.t.Errorf("thawed %v after the cut: before the heartbeat bound, so not by the heartbeat", took)
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = r.wait(pluginExitWait)
	status := n.must("get", "pod", pods[0], "-o", "jsonpath={.status.ephemeralContainerStatuses[0].state.terminated.exitCode}")
	n.t.Logf("the agent's exit code: %q", status)
}
