package integration

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

var perfDoc = flag.String("perf-doc", "", "BenchmarkDropConnections: rewrite the table between the benchmark markers of this file (../docs/performance.md)")

// benchRounds is how many times the benchmark runs each scene.
const benchRounds = 5

// BenchmarkDropConnections runs the RabbitMQ and gRPC scenes of the
// connection tests benchRounds times each, with and without
// --drop-connections, and prints the table of docs/performance.md. Each
// round is a whole scene (a target, a freeze, a thaw), so run it once:
//
//	go test -count=1 -run '^$' -bench DropConnections -benchtime 1x ./integration/ [-args -perf-doc ../docs/performance.md]
//
// (as root; the suite takes /tmp/cgfreeze-itest.lock itself: not under flock)
func BenchmarkDropConnections(b *testing.B) {
	var rabbitWith, rabbitWithout, grpcFailWith, grpcReachWith, grpcFailWithout []time.Duration
	var codesWith, codesWithout []codes.Code
	round := func(name string, fn func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			if b.N > 1 {
				b.Fatal("each round is a whole scene: run the benchmark with -benchtime 1x")
			}
			fn(b)
		})
	}
	for i := range benchRounds {
		round(fmt.Sprintf("rabbitmq/with/%d", i), func(b *testing.B) {
			rabbitWith = append(rabbitWith, rabbitRedelivery(b, true, 10*time.Second))
		})
		round(fmt.Sprintf("rabbitmq/without/%d", i), func(b *testing.B) {
			rabbitWithout = append(rabbitWithout, rabbitRedelivery(b, false, 5*rabbitHeartbeat+2*time.Second))
		})
		round(fmt.Sprintf("grpc/with/%d", i), func(b *testing.B) {
			r := grpcFailover(b, true)
			grpcFailWith, grpcReachWith, codesWith = append(grpcFailWith, r.fail), append(grpcReachWith, r.reach), append(codesWith, r.code)
		})
		round(fmt.Sprintf("grpc/without/%d", i), func(b *testing.B) {
			r := grpcFailover(b, false)
			grpcFailWithout, codesWithout = append(grpcFailWithout, r.fail), append(codesWithout, r.code)
		})
	}
	if b.Failed() {
		return
	}
	b.ReportMetric(median(rabbitWith).Seconds()*1000, "rabbitmq-with-ms")
	b.ReportMetric(median(rabbitWithout).Seconds()*1000, "rabbitmq-without-ms")
	b.ReportMetric(median(grpcReachWith).Seconds()*1000, "grpc-reconnect-with-ms")
	b.ReportMetric(median(grpcFailWithout).Seconds()*1000, "grpc-stream-fails-without-ms")

	var t bytes.Buffer
	fmt.Fprintf(&t, "Measured by `BenchmarkDropConnections` (integration/bench_test.go), %d rounds of each scene, on %s. Times run from the moment the test reads cgfreeze's `frozen` event; median (min to max).\n\n", benchRounds, machine())
	fmt.Fprintf(&t, "| scene, measured from the `frozen` event | with `--drop-connections` | without |\n| --- | --- | --- |\n")
	fmt.Fprintf(&t, "| RabbitMQ: a second consumer has received all %d messages that the frozen consumer held unacknowledged (heartbeat timeout %v) | %s | %s |\n",
		rabbitPrefetch, rabbitHeartbeat, spread(rabbitWith), spread(rabbitWithout))
	fmt.Fprintf(&t, "| gRPC: the client's long-lived stream to the frozen server ends | %s, %s | %s, %s (the stream's deadline, %v after it opened) |\n",
		spread(grpcFailWith), codeNames(codesWith), spread(grpcFailWithout), codeNames(codesWithout), grpcStreamDeadline)
	fmt.Fprintf(&t, "| gRPC: the client has its first answer from the second server (reconnect) | %s | not before the stream's deadline |\n", spread(grpcReachWith))
	table := t.String()
	fmt.Printf("\n%s\n", table)
	if *perfDoc != "" {
		if err := replaceBetween(*perfDoc, "<!-- benchmark:begin -->\n", "<!-- benchmark:end -->", table); err != nil {
			b.Fatal(err)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%v (%v to %v)", round(median(s)), round(s[0]), round(s[len(s)-1]))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

func codeNames(cs []codes.Code) string {
	var names []string
	for _, c := range cs {
		if n := strings.ToUpper(strings.ReplaceAll(snake(c.String()), " ", "_")); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

// snake turns "DeadlineExceeded" into "Deadline_Exceeded".
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// machine describes where the benchmark ran.
func machine() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	rabbitVersion := "?"
	if m, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*"); len(m) > 0 {
		rabbitVersion = strings.TrimPrefix(filepath.Base(m[0]), "rabbitmq_server-")
	}
	return fmt.Sprintf("Linux %s (%s), %d CPUs, %s; RabbitMQ %s (Debian's rabbitmq-server), amqp091-go and grpc-go as in go.mod; everything on loopback in network namespaces of the test",
		unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]), runtime.NumCPU(), runtime.Version(), rabbitVersion)
}

// replaceBetween replaces what lies between two markers of a file.
func replaceBetween(file, begin, end, content string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q markers", file, strings.TrimSpace(begin), end)
	}
	return os.WriteFile(file, []byte(s[:i+len(begin)]+content+s[j:]), 0o644)
}
