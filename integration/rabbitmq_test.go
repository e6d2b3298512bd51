package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The broker of the RabbitMQ tests: Debian's rabbitmq-server, started once
// for the whole run in a network namespace of the suite's own (listening on
// its 127.0.0.1:5672, which is no port of this machine's), in a cgroup of
// the suite's own (epmd daemonizes: the cgroup is how all of it is ended).
const (
	rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	// rabbitHeartbeat is the AMQP heartbeat timeout the frozen consumer
	// negotiates (the broker is configured with the same): without
	// --drop-connections the broker notices a frozen consumer only
	// through missed heartbeats. RabbitMQ's default is 60 s; 2 s keeps
	// the suite short.
	rabbitHeartbeat = 2 * time.Second
	rabbitStart     = 90 * time.Second
	// rabbitPrefetch is how many messages the frozen consumer holds unacknowledged.
	rabbitPrefetch = 5
)

type broker struct {
	ns   *netns
	cg   string // the cgroup's directory
	dir  string
	addr string
	cmd  *exec.Cmd
	err  error
}

var (
	rabbitOnce sync.Once
	rabbit     *broker
)

// startRabbit returns the suite's broker, starting it the first time.
func startRabbit(t testing.TB) *broker {
	t.Helper()
	rabbitOnce.Do(func() { rabbit = launchRabbit() })
	if rabbit.err != nil {
		t.Fatalf("RabbitMQ: %v", rabbit.err)
	}
	return rabbit
}

func launchRabbit() *broker {
	b := &broker{addr: "127.0.0.1:5672"}
	if _, err := os.Stat(rabbitServer); err != nil {
		b.err = fmt.Errorf("%s is missing (%w): apt-get install rabbitmq-server (integration/test.sh does)", rabbitServer, err)
		return b
	}
	var err error
	if b.dir, err = os.MkdirTemp("", "cgfreeze-rabbitmq-"); err != nil {
		b.err = err
		return b
	}
	conf := fmt.Sprintf("listeners.tcp.default = %s\nheartbeat = %d\ndisk_free_limit.absolute = 1MB\n", b.addr, int(rabbitHeartbeat.Seconds()))
	for name, content := range map[string]string{"rabbitmq.conf": conf, "enabled_plugins": "[]."} {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(content), 0o644); err != nil {
			b.err = err
			return b
		}
	}
	if b.ns, err = newNetns(); err != nil {
		b.err = err
		return b
	}
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	b.cg = filepath.Join(cg2Mount, "cgfreeze-test-rabbitmq-"+hex.EncodeToString(suffix))
	if err := os.Mkdir(b.cg, 0o755); err != nil {
		b.err = err
		return b
	}
	log, err := os.Create(filepath.Join(b.dir, "log"))
	if err != nil {
		b.err = err
		return b
	}
	defer func() { _ = log.Close() }()
	b.cmd = exec.Command(nsenterPath, "--net="+b.ns.path, "--", busybox, "sh", "-c", joinScript, "join", filepath.Join(b.cg, "cgroup.procs"), rabbitServer)
	b.cmd.Env = append(os.Environ(), "HOME="+b.dir, "RABBITMQ_NODENAME=rabbit@localhost",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(b.dir, "mnesia"), "RABBITMQ_LOG_BASE="+filepath.Join(b.dir, "logs"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(b.dir, "rabbitmq"), "RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(b.dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(b.dir, "pid"), "RABBITMQ_LOGS=-")
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		b.err = fmt.Errorf("start %s: %w", rabbitServer, err)
		return b
	}
	go func() { _ = b.cmd.Wait() }()
	start := time.Now()
	for {
		conn, err := b.dial(time.Second)
		if err == nil {
			_ = conn.Close()
			fmt.Fprintf(os.Stderr, "integration: RabbitMQ is up after %v (heartbeat %v)\n", time.Since(start).Round(time.Millisecond), rabbitHeartbeat)
			return b
		}
		if time.Since(start) > rabbitStart {
			out, _ := os.ReadFile(filepath.Join(b.dir, "log"))
			b.err = fmt.Errorf("no AMQP connection to %s after %v: %w; its log ends: %s", b.addr, rabbitStart, err, tail(string(out), 3000))
			return b
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dial opens an AMQP connection to the broker from this process (the
// socket is made in the broker's network namespace).
func (b *broker) dial(timeout time.Duration) (*amqp.Connection, error) {
	return amqp.DialConfig("amqp://guest:guest@"+b.addr+"/", amqp.Config{
		Heartbeat: 10 * time.Second,
		Dial: func(network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return b.ns.dial(ctx, network, addr)
		},
	})
}

// stopRabbit ends the broker and everything it started, if it ran.
func stopRabbit() {
	if rabbit == nil {
		return
	}
	if rabbit.cg != "" {
		_ = os.WriteFile(filepath.Join(rabbit.cg, "cgroup.kill"), []byte("1"), 0)
		deadline := time.Now().Add(cleanupDeadline)
		for {
			b, err := os.ReadFile(filepath.Join(rabbit.cg, "cgroup.procs"))
			if err != nil || strings.TrimSpace(string(b)) == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The cgroup stays busy for a moment after its last process.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := os.Remove(rabbit.cg)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "integration: remove the broker's cgroup: %v\n", err)
				break
			}
		}
	}
	if rabbit.ns != nil {
		_ = rabbit.ns.f.Close()
	}
	if rabbit.dir != "" {
		_ = os.RemoveAll(rabbit.dir)
	}
}

// rabbitRedelivery runs the scene of the RabbitMQ test once: a consumer
// (the target, frozen) holds rabbitPrefetch unacknowledged messages; a
// second consumer waits on the same queue. It freezes the first consumer,
// with --drop-connections or without, and returns how long after the
// frozen event the second consumer had every message, redelivered.
func rabbitRedelivery(tb testing.TB, drop bool, limit time.Duration) time.Duration {
	tb.Helper()
	b := startRabbit(tb)
	h := newHarness(tb)
	tg := h.newTarget(kindDirect, targetOpts{netns: b.ns})
	conn, err := b.dial(5 * time.Second)
	if err != nil {
		tb.Fatalf("AMQP connection to the broker: %v", err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	queue := "cgfreeze-test-" + hex.EncodeToString(suffix)
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		tb.Fatal(err)
	}
	defer func() { _, _ = ch.QueueDelete(queue, false, false, false) }()

	consumer := h.startHelper(tg.cg, "amqp-consumer", helperOpts{netns: b.ns}, b.addr, queue, fmt.Sprint(rabbitPrefetch), rabbitHeartbeat.String())
	consumer.next(tb, "consuming", startDeadline)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range rabbitPrefetch {
		if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i))}); err != nil {
			tb.Fatal(err)
		}
	}
	for range rabbitPrefetch {
		consumer.next(tb, "delivered", startDeadline)
	}
	second, err := conn.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	deliveries, err := second.Consume(queue, "second", true, false, false, false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	select {
	case d := <-deliveries:
		tb.Fatalf("the second consumer got message %q while the first one holds them all", d.Body)
	case <-time.After(stillFor):
	}

	args := []string{"--timeout", "5s"}
	if drop {
		args = append(args, "--drop-connections")
	}
	r := tg.start("", args...)
	r.waitEvent("frozen")
	frozenAt := time.Now()
	if drop {
		if e := r.waitEvent("connections_dropped"); e.Count == nil || *e.Count != 1 {
			tb.Errorf("connections_dropped %s: want the consumer's one connection", e.raw)
		}
	}
	var last time.Duration
	timeout := time.After(limit)
	for got := 0; got < rabbitPrefetch; got++ {
		select {
		case d := <-deliveries:
			if !d.Redelivered {
				tb.Errorf("message %q reached the second consumer without the redelivered flag", d.Body)
			}
			last = time.Since(frozenAt)
		case <-timeout:
			tb.Fatalf("the second consumer has %d of the %d messages %v after the freeze (drop %v)", got, rabbitPrefetch, limit, drop)
		}
	}
	tg.requireFrozen("after the redelivery")
	r.signal(syscall.SIGTERM)
	r.waitEvent("thawed")
	if code := r.wait(); code != 0 {
		tb.Errorf("exit code %d: %s", code, r.describe())
	}
	h.checkLeftovers()
	return last
}

// TestDropConnectionsRabbitMQ: a consumer frozen with --drop-connections
// has its unacknowledged messages redelivered to another consumer within
// 2 s; without the flag only the broker's heartbeat timeout frees them.
func TestDropConnectionsRabbitMQ(t *testing.T) {
	with := rabbitRedelivery(t, true, 2*time.Second)
	t.Logf("redelivery %v after the freeze with --drop-connections", with)
	// Without: the broker closes the connection after missed heartbeats,
	// which takes about two heartbeat intervals; 5 of them bound it.
	without := rabbitRedelivery(t, false, 5*rabbitHeartbeat+2*time.Second)
	t.Logf("redelivery %v after the freeze without --drop-connections (heartbeat %v)", without, rabbitHeartbeat)
	if without < rabbitHeartbeat {
		t.Errorf("without --drop-connections the messages came back after %v, before a heartbeat timeout (%v): the freeze did not hold the consumer", without, rabbitHeartbeat)
	}
}
