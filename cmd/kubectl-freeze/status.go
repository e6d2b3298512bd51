package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// agentReport is what `kubectl freeze status` says of one agent.
type agentReport struct {
	Event string `json:"event"` // "agent"
	Pod   podRef `json:"pod"`
	// Role is freeze or thaw.
	Role string `json:"role"`
	// State: starting, waiting (for the plugin's word), frozen, thawing,
	// running (a thaw agent at work), ended.
	State string `json:"state"`
	// ExitCode is the agent's exit code once it ended.
	ExitCode *int `json:"exit_code,omitempty"`
	// Last is the last cgfreeze event of its log.
	Last *contract.Event `json:"last,omitempty"`
	// Started is when its container started.
	Started *time.Time `json:"started,omitempty"`
}

// agentReports lists a pod's agents with what each last reported, from
// the pod's status and the agents' logs. It changes nothing.
func agentReports(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) []agentReport {
	var out []agentReport
	for _, ec := range p.Spec.EphemeralContainers {
		if !isAgent(ec.Name) {
			continue
		}
		r := agentReport{Event: "agent", Pod: podRef{Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName,
			Container: ec.TargetContainerName, Agent: ec.Name}, Role: "freeze", State: "starting"}
		if strings.HasPrefix(ec.Name, ThawPrefix) {
			r.Role = "thaw"
		}
		st := agentStatus(p, ec.Name)
		if st != nil && (st.State.Running != nil || st.State.Terminated != nil) {
			r.Last = lastEvent(ctx, c, p.Namespace, p.Name, ec.Name)
		}
		switch {
		case st == nil || st.State.Waiting != nil:
		case st.State.Terminated != nil:
			code := int(st.State.Terminated.ExitCode)
			r.State, r.ExitCode = "ended", &code
			t := st.State.Terminated.StartedAt.Time
			r.Started = &t
		case st.State.Running != nil:
			t := st.State.Running.StartedAt.Time
			r.Started = &t
			r.State = "running"
			if r.Last != nil && r.Role == "freeze" {
				switch stateOf(*r.Last) {
				case stateFreezing:
					r.State = "waiting"
				case stateFrozen:
					r.State = "frozen"
				case stateThawed, stateEnded, stateFailed:
					r.State = "thawing"
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// statusCmd is `kubectl freeze status TARGET...`: read-only.
type statusCmd struct {
	client         kubernetes.Interface
	namespace      string
	targets        []string
	selector       string
	json           bool
	stdout, stderr io.Writer
}

func (s *statusCmd) run(ctx context.Context) int {
	pods, code := listForStatus(ctx, s.client, s.namespace, s.targets, s.selector, s.stderr)
	if code != exitOK {
		return code
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	if !s.json {
		fmt.Fprintln(tw, "POD\tNODE\tCONTAINER\tAGENT\tROLE\tSTATE\tEXIT\tLAST EVENT")
	}
	frozen := 0
	for i := range pods {
		reports := agentReports(ctx, s.client, &pods[i])
		if len(reports) == 0 && !s.json {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\tno agent\t-\t-\n", pods[i].Name, orDash(pods[i].Spec.NodeName))
		}
		for _, r := range reports {
			if r.State == "frozen" {
				frozen++
			}
			if s.json {
				b, _ := json.Marshal(r)
				fmt.Fprintf(s.stdout, "%s\n", b)
				continue
			}
			exit, last := "-", "-"
			if r.ExitCode != nil {
				exit = fmt.Sprint(*r.ExitCode)
			}
			if r.Last != nil {
				last = describeEvent(*r.Last)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Pod.Name, orDash(r.Pod.Node), r.Pod.Container, r.Pod.Agent, r.Role, r.State, exit, last)
		}
	}
	_ = tw.Flush()
	if !s.json {
		fmt.Fprintf(s.stdout, "%d agent(s) holding a freeze\n", frozen)
	}
	return exitOK
}

// describeEvent is a short text of an event: its name, reason, processes,
// error.
func describeEvent(e contract.Event) string {
	parts := []string{e.Event}
	if e.Reason != "" {
		parts = append(parts, "reason="+e.Reason)
	}
	if e.Processes != nil {
		parts = append(parts, fmt.Sprintf("processes=%d", *e.Processes))
	}
	if e.Error != "" {
		msg := e.Error
		if len(msg) > 80 {
			msg = msg[:77] + "..."
		}
		parts = append(parts, fmt.Sprintf("error=%q", msg))
	}
	return strings.Join(parts, " ")
}

// listForStatus lists the targets' pods, running or not: status and thaw
// look at pods whatever their phase.
func listForStatus(ctx context.Context, c kubernetes.Interface, ns string, targets []string, selector string, stderr io.Writer) ([]corev1.Pod, int) {
	sel, err := resolveTargets(ctx, c, ns, targets, selector)
	if err != nil && (sel == nil || len(sel.Skipped) == 0) {
		fmt.Fprintf(stderr, "kubectl-freeze: %v\n", err)
		if errors.Is(err, errNoPods) {
			return nil, exitNoTarget
		}
		return nil, exitFailed
	}
	pods := sel.Pods
	for name := range sel.Skipped {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			pods = append(pods, *p)
		}
	}
	return pods, exitOK
}

// thawCmd is `kubectl freeze thaw TARGET...`: a `cgfreeze thaw` agent in
// each pod, for a freeze that a dead agent left.
type thawCmd struct {
	client         kubernetes.Interface
	namespace      string
	targets        []string
	selector       string
	container      string
	opts           agentOptions
	json           bool
	runningTimeout time.Duration
	stdout, stderr io.Writer
}

// thawResult is one pod's thaw.
type thawResult struct {
	ref   podRef
	event *contract.Event
	code  int
	err   error
}

func (t *thawCmd) run(ctx context.Context) int {
	sel, err := resolveTargets(ctx, t.client, t.namespace, t.targets, t.selector)
	if err != nil {
		fmt.Fprintf(t.stderr, "kubectl-freeze: %v\n", err)
		if errors.Is(err, errNoPods) {
			return exitNoTarget
		}
		return exitFailed
	}
	results := make([]thawResult, len(sel.Pods))
	var wg sync.WaitGroup
	for i := range sel.Pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = t.thawPod(ctx, &sel.Pods[i])
		}()
	}
	wg.Wait()
	code := exitOK
	for _, r := range results {
		if t.json {
			var line []byte
			if r.event != nil {
				b, _ := jsonLine(*r.event)
				line, _ = withPod(b, r.ref)
			}
			if r.err != nil {
				c := r.code
				line = pluginEvent(contract.EventError, r.err.Error(), &c, r.ref)
			}
			_, _ = t.stdout.Write(line)
		} else {
			switch {
			case r.err != nil:
				fmt.Fprintf(t.stdout, "pod/%s: thaw failed: %v\n", r.ref.Name, r.err)
			case r.event.Event == contract.EventRecovered:
				fmt.Fprintf(t.stdout, "pod/%s: thawed a freeze that a dead agent left (container %s)\n", r.ref.Name, r.ref.Container)
			default:
				fmt.Fprintf(t.stdout, "pod/%s: nothing to thaw (container %s)\n", r.ref.Name, r.ref.Container)
			}
		}
		if r.err != nil {
			code = exitFailed
		}
	}
	return code
}

// thawPod runs one `cgfreeze thaw` agent and waits for its end.
func (t *thawCmd) thawPod(ctx context.Context, p *corev1.Pod) thawResult {
	r := thawResult{ref: podRef{Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName}, code: -1}
	name, id, err := targetContainer(p, t.container)
	if err != nil {
		r.err = err
		return r
	}
	r.ref.Container, r.ref.Agent = name, agentName(p, ThawPrefix)
	if err := addAgent(ctx, t.client, p, agentContainer(r.ref.Agent, name, thawArgs(id, t.opts), false, t.opts)); err != nil {
		r.err = err
		return r
	}
	deadline := time.Now().Add(t.runningTimeout + t.opts.Timeout)
	for {
		cur, err := t.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			r.err = fmt.Errorf("read pod %s while its thaw agent %s runs: %w", p.Name, r.ref.Agent, err)
			return r
		}
		if st := agentStatus(cur, r.ref.Agent); st != nil {
			if st.State.Terminated != nil {
				r.code = int(st.State.Terminated.ExitCode)
				r.event = lastEvent(ctx, t.client, p.Namespace, p.Name, r.ref.Agent)
				switch {
				case r.event == nil:
					r.err = fmt.Errorf("the thaw agent %s exited %d without an event", r.ref.Agent, r.code)
				case r.event.Event == contract.EventError || r.code != 0:
					r.err = fmt.Errorf("the thaw agent %s exited %d: %s", r.ref.Agent, r.code, r.event.Error)
				}
				return r
			}
			if w := st.State.Waiting; w != nil && fatalWaiting[w.Reason] {
				r.err = fmt.Errorf("the thaw agent %s cannot start: %s: %s", r.ref.Agent, w.Reason, w.Message)
				return r
			}
		}
		if time.Now().After(deadline) {
			r.err = fmt.Errorf("the thaw agent %s did not end within %v", r.ref.Agent, t.runningTimeout+t.opts.Timeout)
			return r
		}
		select {
		case <-ctx.Done():
			r.err = ctx.Err()
			return r
		case <-time.After(pollEvery):
		}
	}
}
