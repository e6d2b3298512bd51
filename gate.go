package main

import (
	"time"

	"github.com/cgfreeze/cgfreeze/agent"
	"github.com/spf13/pflag"
)

// The start gate and the heartbeat of --lease stdin (agent/gate.go): the
// flags a remote caller such as kubectl-freeze passes.

type gateConfig struct {
	startTimeout time.Duration
	heartbeat    time.Duration
}

// gateFlags adds --start-timeout and --heartbeat to a freeze's flags and
// returns the check to run once they are parsed (with the leases).
func gateFlags(fs *pflag.FlagSet, g *gateConfig) func(leases []string) []string {
	fs.DurationVar(&g.startTimeout, "start-timeout", 0, "with --lease stdin: freeze only once the caller writes something on stdin; end with exit 17, nothing changed, if it does not within this long (0: freeze at once)")
	fs.DurationVar(&g.heartbeat, "heartbeat", 0, "with --lease stdin: thaw when stdin stays silent for longer than this (the caller writes any line as a heartbeat; 0: no heartbeat)")
	return func(leases []string) []string {
		var bad []string
		if g.startTimeout < 0 {
			bad = append(bad, "--start-timeout must not be negative")
		}
		if g.heartbeat < 0 {
			bad = append(bad, "--heartbeat must not be negative")
		}
		stdin := false
		for _, l := range leases {
			stdin = stdin || l == agent.LeaseStdin
		}
		if (g.startTimeout > 0 || g.heartbeat > 0) && !stdin {
			bad = append(bad, "--start-timeout and --heartbeat read stdin: add --lease stdin")
		}
		return bad
	}
}

// gateArgs passes the gate's flags on to the holder.
func gateArgs(g gateConfig) []string {
	return []string{"--start-timeout=" + g.startTimeout.String(), "--heartbeat=" + g.heartbeat.String()}
}
