package integration

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// grpcStreamDeadline is the deadline of the client's long-lived stream in
// the gRPC scene: without --drop-connections, the stream to a frozen server
// ends only then (grpc-go's keepalive is off by default).
const grpcStreamDeadline = 3 * time.Second

// grpcResult is what the client of the gRPC scene saw.
type grpcResult struct {
	code codes.Code    // how the stream to the frozen server ended
	fail time.Duration // when, after the frozen event
	// reach is when, after the frozen event, a new stream got its first
	// answer from the second server (0: not measured).
	reach time.Duration
}

// grpcFailover runs the scene of the gRPC test once: a client (this
// process, google.golang.org/grpc, round_robin over two servers) has a
// long-lived server stream (Health.Watch) open to server A, the target;
// server B runs beside it. A is frozen, with --drop-connections or without.
// With drop, the client is expected to see its stream fail and to reach B
// at once; the time to its first answer from B is measured.
func grpcFailover(tb testing.TB, drop bool) grpcResult {
	tb.Helper()
	h := newHarness(tb)
	ns := h.newNetns()
	tg := h.newTarget(kindDirect, targetOpts{netns: ns})
	a := h.startHelper(tg.cg, "grpc-server", helperOpts{netns: ns}, "tcp4/127.0.0.1:0", "a")
	addrA := a.next(tb, "listening", startDeadline).Local

	// B knows no service "a": its Watch answers SERVICE_UNKNOWN, which
	// tells the client's streams on B from those on A (SERVING).
	lB, err := ns.listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srvB := grpc.NewServer()
	healthpb.RegisterHealthServer(srvB, health.NewServer())
	go func() { _ = srvB.Serve(lB) }()
	defer srvB.Stop()

	r := manual.NewBuilderWithScheme("cgfreeze")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrA}, {Addr: lB.Addr().String()}}})
	cc, err := grpc.NewClient(r.Scheme()+":///servers",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return ns.dial(ctx, "tcp", addr) }))
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	client := healthpb.NewHealthClient(cc)

	// Open streams until one is on A (round_robin alternates between
	// the servers that are ready; A may still be connecting at first).
	var stream healthpb.Health_WatchClient
	var streamCtx context.Context
	for start := time.Now(); stream == nil; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > startDeadline {
			tb.Fatalf("no stream reached server A within %v", startDeadline)
		}
		ctx, cancel := context.WithTimeout(context.Background(), grpcStreamDeadline)
		defer cancel()
		s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "a"}, grpc.WaitForReady(true))
		if err != nil {
			tb.Fatalf("Watch: %v", err)
		}
		resp, err := s.Recv()
		if err != nil {
			tb.Fatalf("Watch: first answer: %v", err)
		}
		if resp.Status == healthpb.HealthCheckResponse_SERVING {
			stream, streamCtx = s, ctx
		} else {
			cancel()
		}
	}
	ended := make(chan readEnd, 1)
	go func() {
		_, err := stream.Recv()
		ended <- readEnd{time.Now(), err}
	}()

	args := []string{"--duration", "20s"}
	if drop {
		args = append(args, "--drop-connections")
	}
	run := tg.start("", args...)
	run.waitEvent("frozen")
	frozenAt := time.Now()
	if drop {
		if e := run.waitEvent("connections_dropped"); e.Count == nil || *e.Count != 1 {
			tb.Errorf("connections_dropped %s: want the server's one connection", e.raw)
		}
	}
	var res grpcResult
	e := <-ended
	res.code, res.fail = status.Code(e.err), e.at.Sub(frozenAt)
	if res.code == codes.DeadlineExceeded {
		if d, _ := streamCtx.Deadline(); e.at.Before(d) {
			tb.Errorf("the stream ended with DEADLINE_EXCEEDED before its deadline")
		}
	}
	if drop && res.code == codes.Unavailable {
		// The client tries again, as an application would, until B
		// answers.
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "a"})
			var resp *healthpb.HealthCheckResponse
			if err == nil {
				resp, err = s.Recv()
			}
			cancel()
			if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
				res.reach = time.Since(frozenAt)
				break
			}
			if err == nil {
				err = errors.New(resp.Status.String())
			}
			if time.Since(frozenAt) > 2*grpcStreamDeadline {
				tb.Fatalf("the client does not reach server B %v after the freeze: last %v", time.Since(frozenAt), err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	tg.requireFrozen("after the client's stream ended")
	run.signal(syscall.SIGTERM)
	run.waitEvent("thawed")
	if code := run.wait(); code != 0 {
		tb.Errorf("exit code %d: %s", code, run.describe())
	}
	h.checkLeftovers()
	return res
}

// TestDropConnectionsGRPC: a gRPC client with a long-lived stream to a
// server that is frozen with --drop-connections sees UNAVAILABLE and
// reaches the second server within 2 s; without the flag its stream hangs
// until its deadline.
func TestDropConnectionsGRPC(t *testing.T) {
	with := grpcFailover(t, true)
	t.Logf("with --drop-connections: stream ended %v after the freeze (%v), second server reached after %v", with.fail, with.code, with.reach)
	if with.code != codes.Unavailable {
		t.Errorf("with --drop-connections the stream ended with %v, want UNAVAILABLE", with.code)
	}
	if with.reach == 0 || with.reach > 2*time.Second {
		t.Errorf("with --drop-connections the second server was reached %v after the freeze, want within 2 s", with.reach)
	}
	without := grpcFailover(t, false)
	t.Logf("without: stream ended %v after the freeze (%v; its deadline was %v after it opened)", without.fail, without.code, grpcStreamDeadline)
	if without.code != codes.DeadlineExceeded {
		t.Errorf("without --drop-connections the stream ended with %v, want DEADLINE_EXCEEDED (it hangs until its deadline)", without.code)
	}
}
