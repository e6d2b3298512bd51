package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The agent: cgfreeze in an ephemeral container of the target's pod.

const (
	// ImageEnv overrides DefaultImage.
	ImageEnv = "CGFREEZE_IMAGE"
	// DefaultImage is the agent's image when neither --image nor
	// CGFREEZE_IMAGE is given.
	DefaultImage = "ghcr.io/cgfreeze/cgfreeze:latest"
	// AgentPrefix starts the name of every ephemeral container the plugin
	// adds: status finds its agents by it.
	AgentPrefix = "cgfreeze-"
	// ThawPrefix starts the name of the agents of `kubectl freeze thaw`.
	ThawPrefix = AgentPrefix + "thaw-"
	// StartTimeout is the agent's --start-timeout: an agent whose plugin
	// never attached (it died in between) ends by itself after this long,
	// nothing changed. It runs from the agent's start, after the image
	// pull.
	StartTimeout = 60 * time.Second
	// HeartbeatBound is the agent's --heartbeat: it thaws when the plugin
	// is silent for longer (a network lost without a reset).
	HeartbeatBound = 30 * time.Second
	// HeartbeatEvery is how often the plugin writes a heartbeat: six per
	// bound, so that a few late ones do not end a hold.
	HeartbeatEvery = 5 * time.Second
)

// agentOptions are the user's choices that shape every agent.
type agentOptions struct {
	Image      string
	PullPolicy corev1.PullPolicy
	// Duration, Timeout and Drop are cgfreeze's own flags (Drop: the
	// value of --drop-connections, "" when off).
	Duration time.Duration
	Timeout  time.Duration
	Drop     string
	// Extra are more cgfreeze flags, passed as they are.
	Extra []string
}

// agentName returns a name for a new agent that no container of the pod
// has: prefix and five random lowercase letters or digits.
func agentName(p *corev1.Pod, prefix string) string {
	taken := map[string]bool{}
	for _, c := range p.Spec.EphemeralContainers {
		taken[c.Name] = true
	}
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // as the API server's generateName
	for {
		b := make([]byte, 5)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		if name := prefix + string(b); !taken[name] {
			return name
		}
	}
}

// freezeArgs is the agent's command line (after the image's entrypoint,
// cgfreeze): the target by the container ID from the pod's status (it
// works in a pod that shares its PID namespace too), the stdin lease with
// the start gate and the heartbeat, JSON events, and the user's flags.
func freezeArgs(containerID string, o agentOptions) []string {
	args := []string{"--container-id", containerID, "--lease", "stdin", "-o", "json",
		"--start-timeout", StartTimeout.String(), "--heartbeat", HeartbeatBound.String(), "--log-level", "warn"}
	if o.Duration > 0 {
		args = append(args, "--duration", o.Duration.String())
	}
	if o.Timeout > 0 {
		args = append(args, "--timeout", o.Timeout.String())
	}
	if o.Drop != "" {
		args = append(args, "--drop-connections="+o.Drop)
	}
	return append(args, o.Extra...)
}

// thawArgs is the command line of a `cgfreeze thaw` agent.
func thawArgs(containerID string, o agentOptions) []string {
	args := []string{"thaw", "--container-id", containerID, "-o", "json", "--log-level", "warn"}
	if o.Timeout > 0 {
		args = append(args, "--timeout", o.Timeout.String())
	}
	return args
}

// agentContainer is the ephemeral container of an agent: privileged (what
// kubectl debug's --profile=sysadmin sets), root whatever the pod's
// runAsNonRoot says (the agent would otherwise exit 5), in the target
// container's namespaces (targetContainerName), and for a freeze with
// stdin open once (stdinOnce: the runtime closes it when the plugin's
// attach ends, however it ends, and the agent thaws).
func agentContainer(name, target string, args []string, stdin bool, o agentOptions) corev1.EphemeralContainer {
	root, yes, no := int64(0), true, false
	return corev1.EphemeralContainer{
		TargetContainerName: target,
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name:                     name,
			Image:                    o.Image,
			ImagePullPolicy:          o.PullPolicy,
			Args:                     args,
			Stdin:                    stdin,
			StdinOnce:                stdin,
			TTY:                      false,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			SecurityContext: &corev1.SecurityContext{
				Privileged:   &yes,
				RunAsUser:    &root,
				RunAsNonRoot: &no,
			},
		},
	}
}

// addAgent adds an ephemeral container to a pod with a strategic merge
// patch of its ephemeralcontainers subresource (the RBAC verb is patch,
// as for kubectl debug).
func addAgent(ctx context.Context, c kubernetes.Interface, p *corev1.Pod, ec corev1.EphemeralContainer) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"ephemeralContainers": []corev1.EphemeralContainer{ec}}})
	if err != nil {
		return err
	}
	_, err = c.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "ephemeralcontainers")
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "privileged") {
			hint = " (the agents must run privileged: the API server's --allow-privileged, or the namespace's Pod Security level, forbids it)"
		}
		return fmt.Errorf("add the ephemeral container %s to pod %s: %w%s", ec.Name, p.Name, err, hint)
	}
	return nil
}

// agentStatus returns the status of an ephemeral container, or nil.
func agentStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.EphemeralContainerStatuses {
		if s := &p.Status.EphemeralContainerStatuses[i]; s.Name == name {
			return s
		}
	}
	return nil
}

// agentSpec returns the spec of an ephemeral container, or nil.
func agentSpec(p *corev1.Pod, name string) *corev1.EphemeralContainer {
	for i := range p.Spec.EphemeralContainers {
		if c := &p.Spec.EphemeralContainers[i]; c.Name == name {
			return c
		}
	}
	return nil
}

// isAgent: an ephemeral container that the plugin added.
func isAgent(name string) bool { return strings.HasPrefix(name, AgentPrefix) }
