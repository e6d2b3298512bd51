package integration

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// runHelper is this test binary run as a helper process (startHelper): a
// small real server or client that a test freezes. It prints what happens
// to it as JSON lines (helperMsg) and runs until killed.
func runHelper(name string, args []string) int {
	var err error
	switch name {
	case "tcp":
		err = tcpHelper(args)
	case "hold":
		err = holdHelper(args)
	case "amqp-consumer":
		err = amqpConsumer(args)
	case "grpc-server":
		err = grpcServer(args)
	default:
		err = fmt.Errorf("unknown helper %q", name)
	}
	fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
	return 1
}

var helperOut sync.Mutex

func say(m helperMsg) {
	helperOut.Lock()
	defer helperOut.Unlock()
	b, _ := json.Marshal(m)
	fmt.Printf("%s\n", b)
}

// tcpHelper: --listen ADDR accepts connections and echoes on them; --dial
// ADDR connects and echoes too; --share PROCS hands a duplicate of the
// dialled connection's socket to a child process that moves itself into
// the cgroup PROCS (outside the freeze) and holds it. Each connection that
// ends is reported with its error: after a drop and a thaw, the process
// sees ECONNABORTED.
func tcpHelper(args []string) error {
	fs := flag.NewFlagSet("tcp", flag.ContinueOnError)
	listen := fs.String("listen", "", "network/address to listen on (tcp4/127.0.0.1:0)")
	dial := fs.String("dial", "", "network/address to connect to")
	share := fs.String("share", "", "cgroup.procs of the cgroup for a child that holds the dialled socket too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen != "" {
		network, addr, _ := strings.Cut(*listen, "/")
		l, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		say(helperMsg{Kind: "listening", Local: l.Addr().String()})
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					say(helperMsg{Kind: "accept-failed", Err: err.Error()})
					return
				}
				say(helperMsg{Kind: "accepted", Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()})
				go echo(c)
			}
		}()
	}
	if *dial != "" {
		network, addr, _ := strings.Cut(*dial, "/")
		c, err := net.Dial(network, addr)
		if err != nil {
			return err
		}
		if *share != "" {
			f, err := c.(*net.TCPConn).File()
			if err != nil {
				return err
			}
			self, _ := os.Executable()
			cmd := exec.Command(self, *share)
			cmd.Env = append(os.Environ(), helperEnv+"=hold")
			cmd.ExtraFiles = []*os.File{f}
			cmd.Stderr = os.Stderr
			ready, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return err
			}
			_ = f.Close()
			// The child says when it has left the cgroup.
			if _, err := ready.Read(make([]byte, 1)); err != nil {
				return fmt.Errorf("the holding child: %w", err)
			}
		}
		say(helperMsg{Kind: "dialed", Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()})
		go echo(c)
	}
	select {}
}

// echo writes back what it reads, and reports how the connection ended.
func echo(c net.Conn) {
	_, err := io.Copy(c, c)
	if err == nil {
		err = io.EOF
	}
	say(helperMsg{Kind: "closed", Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String(), Err: err.Error()})
}

// holdHelper moves itself into the cgroup whose cgroup.procs is args[0] and
// holds fd 3 open.
func holdHelper(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: hold CGROUP.PROCS")
	}
	if err := os.WriteFile(args[0], []byte("0"), 0); err != nil {
		return err
	}
	fmt.Println("ok")
	f := os.NewFile(3, "shared")
	defer func() { _ = f.Close() }()
	select {}
}

// amqpConsumer ADDR QUEUE PREFETCH HEARTBEAT: consumes QUEUE with manual
// acknowledgement and never acknowledges, saying how many messages it holds.
func amqpConsumer(args []string) error {
	if len(args) != 4 {
		return errors.New("usage: amqp-consumer ADDR QUEUE PREFETCH HEARTBEAT")
	}
	var prefetch int
	if _, err := fmt.Sscan(args[2], &prefetch); err != nil {
		return err
	}
	hb, err := time.ParseDuration(args[3])
	if err != nil {
		return err
	}
	conn, err := amqp.DialConfig("amqp://guest:guest@"+args[0]+"/", amqp.Config{Heartbeat: hb})
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(args[1], "frozen-consumer", false, false, false, false, nil)
	if err != nil {
		return err
	}
	say(helperMsg{Kind: "consuming", Local: conn.LocalAddr().String()})
	n := 0
	for range deliveries {
		n++
		say(helperMsg{Kind: "delivered", N: n})
	}
	say(helperMsg{Kind: "closed", Err: fmt.Sprint(<-conn.NotifyClose(make(chan *amqp.Error, 1)))})
	select {}
}

// grpcServer NETWORK/ADDR SERVICE: a gRPC server whose health service says
// SERVICE is SERVING; its Watch method is a server stream that stays open.
func grpcServer(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: grpc-server NETWORK/ADDR SERVICE")
	}
	network, addr, _ := strings.Cut(args[0], "/")
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus(args[1], healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	say(helperMsg{Kind: "listening", Local: l.Addr().String()})
	return s.Serve(l)
}
