// Command kubectl-freeze is a kubectl plugin: `kubectl freeze
// deployment/worker` freezes every replica of a workload, on whatever node
// each runs, with cgfreeze in an ephemeral container of each pod, holds
// them while the plugin runs, and thaws them all when it ends (Ctrl-C,
// SIGTERM, --duration), or when it dies or loses the API server (each
// agent's stdin lease and heartbeat). docs/kubectl-freeze.md documents it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs, nil))
}

const usage = `kubectl freeze freezes the processes of a workload's pods with cgfreeze (an
ephemeral container in each pod), holds them frozen while it runs, and thaws
them all when it ends.

Usage:
  kubectl freeze TARGET... [flags]          freeze, hold until Ctrl-C/SIGTERM/--duration, thaw
  kubectl freeze status TARGET... [flags]   the cgfreeze agents of those pods and what each last said (read-only)
  kubectl freeze thaw TARGET... [flags]     undo a freeze that a dead agent left (cgfreeze thaw in each pod)
  kubectl freeze version

TARGET is pod/NAME (or a bare pod NAME), deployment/NAME, statefulset/NAME,
replicaset/NAME or daemonset/NAME; or give -l/--selector. A pod named status,
thaw or version must be written pod/NAME.

Examples:
  kubectl freeze deployment/worker
  kubectl freeze -l app=consumer --duration 5m -o json
  kubectl freeze status deployment/worker
  kubectl freeze thaw deployment/worker

`

// testHooks replace the cluster in unit tests.
type testHooks struct {
	client kubernetes.Interface
	attach Attacher
}

func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal, hooks *testHooks) int {
	cmd := "freeze"
	if len(args) > 0 {
		switch args[0] {
		case "status", "thaw", "freeze":
			cmd, args = args[0], args[1:]
		case "version":
			fmt.Fprintf(stdout, "kubectl-freeze %s\n", version)
			return exitOK
		case "help":
			fmt.Fprint(stdout, usage)
			return exitOK
		}
	}
	fs := pflag.NewFlagSet("kubectl-freeze", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	config := genericclioptions.NewConfigFlags(true)
	var (
		selector, container, image, pullPolicy, output, drop string
		dropLocal, dropRemote, dropDirection                 string
		duration, timeout, runningTimeout                    time.Duration
		allowPartial, follow                                 bool
	)
	fs.StringVarP(&selector, "selector", "l", "", "the pods with these labels (as kubectl get -l), besides or instead of TARGETs")
	if cmd != "status" {
		fs.StringVarP(&container, "container", "c", "", "the container to freeze in each pod (default: the kubectl.kubernetes.io/default-container annotation, else the pod's only or first container)")
		fs.StringVar(&image, "image", "", "the cgfreeze image of the agents (default: $"+ImageEnv+", else "+DefaultImage+")")
		fs.StringVar(&pullPolicy, "image-pull-policy", "", "the agents' image pull policy: Always, IfNotPresent or Never (default: the cluster's, from the image's tag)")
		fs.DurationVar(&timeout, "timeout", 10*time.Second, "cgfreeze's --timeout: how long each freeze, and each thaw, may take")
		fs.DurationVar(&runningTimeout, "pod-running-timeout", 2*time.Minute, "how long to wait for each agent to run (its image pulled)")
	}
	if cmd == "freeze" {
		fs.DurationVarP(&duration, "duration", "d", 0, "thaw by itself after this long (cgfreeze's --duration; 0: hold until Ctrl-C or SIGTERM)")
		fs.StringVar(&drop, "drop-connections", "", "once frozen, abort the frozen processes' TCP connections (cgfreeze's --drop-connections: on, or required)")
		fs.Lookup("drop-connections").NoOptDefVal = "on"
		fs.StringVar(&dropLocal, "drop-local-port", "", "with --drop-connections: only these local ports (cgfreeze's flag)")
		fs.StringVar(&dropRemote, "drop-remote-port", "", "with --drop-connections: only these remote ports (cgfreeze's flag)")
		fs.StringVar(&dropDirection, "drop-direction", "", "with --drop-connections: inbound or outbound only (cgfreeze's flag)")
		fs.BoolVar(&allowPartial, "allow-partial", false, "keep the pods that froze frozen when others refuse or fail (default: all or nothing)")
		fs.BoolVar(&follow, "follow", false, "also freeze the targets' pods that appear while holding (a replica recreated); without it they are only reported")
	}
	fs.StringVarP(&output, "output", "o", "text", "text, or json: one JSON line per event, each cgfreeze event with a pod object added")
	config.AddFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "%sFlags:\n%s", usage, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "kubectl-freeze: %v (see kubectl freeze --help)\n", err)
		return exitUsage
	}
	targets := fs.Args()
	var bad []string
	if len(targets) == 0 && selector == "" {
		bad = append(bad, "name a TARGET (pod/NAME, deployment/NAME, ...) or give -l/--selector")
	}
	for _, t := range targets {
		if _, err := parseTarget(t); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if output != "text" && output != "json" {
		bad = append(bad, fmt.Sprintf("--output must be text or json, not %q", output))
	}
	switch corev1.PullPolicy(pullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad = append(bad, fmt.Sprintf("--image-pull-policy must be Always, IfNotPresent or Never, not %q", pullPolicy))
	}
	if drop != "" && drop != "on" && drop != "required" {
		bad = append(bad, fmt.Sprintf("--drop-connections must be on or required, not %q", drop))
	}
	if drop == "" && (dropLocal != "" || dropRemote != "" || dropDirection != "") {
		bad = append(bad, "--drop-local-port, --drop-remote-port and --drop-direction need --drop-connections")
	}
	if duration < 0 || timeout < 0 || runningTimeout < 0 {
		bad = append(bad, "--duration, --timeout and --pod-running-timeout must not be negative")
	}
	if cmd != "status" && timeout == 0 {
		bad = append(bad, "--timeout must be positive")
	}
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "kubectl-freeze: %s (see kubectl freeze --help)\n", strings.Join(bad, "; "))
		return exitUsage
	}
	if image == "" {
		image = os.Getenv(ImageEnv)
	}
	if image == "" {
		image = DefaultImage
	}
	opts := agentOptions{Image: image, PullPolicy: corev1.PullPolicy(pullPolicy), Duration: duration, Timeout: timeout, Drop: drop}
	for flag, v := range map[string]string{"--drop-local-port": dropLocal, "--drop-remote-port": dropRemote, "--drop-direction": dropDirection} {
		if v != "" {
			opts.Extra = append(opts.Extra, flag+"="+v)
		}
	}

	ns, client, attach, err := connect(config, hooks)
	if err != nil {
		fmt.Fprintf(stderr, "kubectl-freeze: %v\n", err)
		return exitFailed
	}
	ctx := context.Background()
	jsonOut := output == "json"
	switch cmd {
	case "status":
		return (&statusCmd{client: client, namespace: ns, targets: targets, selector: selector, json: jsonOut, stdout: stdout, stderr: stderr}).run(ctx)
	case "thaw":
		return (&thawCmd{client: client, namespace: ns, targets: targets, selector: selector, container: container, opts: opts,
			json: jsonOut, runningTimeout: runningTimeout, stdout: stdout, stderr: stderr}).run(ctx)
	}
	f := &freezeCmd{client: client, attach: attach, namespace: ns, targets: targets, selector: selector, container: container,
		opts: opts, allowPartial: allowPartial, follow: follow, json: jsonOut, runningTimeout: runningTimeout,
		stdout: stdout, stderr: stderr, sigs: sigs}
	return f.run(ctx)
}

// connect makes the client from the kubeconfig flags (or the test's).
func connect(config *genericclioptions.ConfigFlags, hooks *testHooks) (string, kubernetes.Interface, Attacher, error) {
	ns, _, err := config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", nil, nil, fmt.Errorf("the namespace from the kubeconfig: %w", err)
	}
	if hooks != nil {
		if *config.Namespace != "" {
			ns = *config.Namespace
		}
		return ns, hooks.client, hooks.attach, nil
	}
	rc, err := config.ToRESTConfig()
	if err != nil {
		return "", nil, nil, fmt.Errorf("the kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", nil, nil, fmt.Errorf("the Kubernetes client: %w", err)
	}
	return ns, client, apiAttacher{config: rc, client: client}, nil
}
