package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Exit codes of kubectl-freeze (docs/kubectl-freeze.md).
const (
	exitOK = 0
	// exitFailed: a pod refused or failed to freeze (each pod's reason is
	// printed); the others were thawed (all or nothing), or kept frozen
	// with --allow-partial when none froze.
	exitFailed = 1
	exitUsage  = 2
	// exitNoTarget: the targets matched no pod that can be frozen.
	exitNoTarget = 3
	// exitUnconfirmed: some pod was not confirmed thawed (its stream was
	// lost, or the plugin gave up waiting): see kubectl freeze status.
	exitUnconfirmed = 4
)

const (
	// followEvery is how often the targets' selectors are listed for pods
	// that appeared while holding.
	followEvery = 2 * time.Second
	// thawWaitExtra is added to the agents' --timeout for the wait for
	// every thawed event after a stop.
	thawWaitExtra = 20 * time.Second
)

// freezeCmd is one `kubectl freeze TARGET...`.
type freezeCmd struct {
	client         kubernetes.Interface
	attach         Attacher
	namespace      string
	targets        []string
	selector       string
	container      string
	opts           agentOptions
	allowPartial   bool
	follow         bool
	json           bool
	runningTimeout time.Duration
	stdout, stderr io.Writer
	sigs           <-chan os.Signal
}

// podView is what the plugin shows of a pod.
type podView struct {
	s         *session
	state     string
	processes *int
	since     time.Time // when it froze
	err       error
	code      *int
	done      bool
	froze     bool // it was frozen at some point
	// shown is the state of the pod's last line in text mode.
	shown string
	// awaitCount: frozen came without the count, which the agent's
	// holding event brings right after it (event contract schema 2); the
	// pod's frozen line and the summary wait for it.
	awaitCount bool
}

// human is where the plugin's own lines go: stdout in text mode, stderr
// with -o json (stdout has only events then).
func (f *freezeCmd) human() io.Writer {
	if f.json {
		return f.stderr
	}
	return f.stdout
}

func (f *freezeCmd) run(ctx context.Context) int {
	start := time.Now()
	sel, err := resolveTargets(ctx, f.client, f.namespace, f.targets, f.selector)
	if err != nil {
		fmt.Fprintf(f.stderr, "kubectl-freeze: %v\n", err)
		if errors.Is(err, errNoPods) {
			return exitNoTarget
		}
		return exitFailed
	}
	for _, name := range sortedKeys(sel.Skipped) {
		fmt.Fprintf(f.stderr, "kubectl-freeze: pod/%s skipped: %s\n", name, sel.Skipped[name])
	}
	for i := range sel.Pods {
		for _, w := range probeWarnings(&sel.Pods[i], f.container, f.opts.Duration) {
			fmt.Fprintf(f.stderr, "kubectl-freeze: warning: %s\n", w)
		}
	}

	updates := make(chan update, 64)
	views := map[string]*podView{}
	var order []string
	active := 0
	startPod := func(p *corev1.Pod) {
		s := newSession(f.client, f.attach, f.opts, p, f.container, f.runningTimeout, updates)
		views[p.Name] = &podView{s: s, state: stateAdding, shown: stateAdding}
		order = append(order, p.Name)
		active++
		go s.run(ctx)
	}
	for i := range sel.Pods {
		startPod(&sel.Pods[i])
	}
	fmt.Fprintf(f.human(), "freezing %d pod(s): %s\n", len(sel.Pods), strings.Join(order, ", "))

	stopping, announced, failed := false, false, false
	var thawDeadline <-chan time.Time
	stopAll := func(why string) {
		if stopping {
			return
		}
		stopping = true
		fmt.Fprintf(f.human(), "thawing every pod (%s)\n", why)
		for _, v := range views {
			v.s.stop()
			if v.state == stateFrozen || v.state == stateFreezing {
				v.state = stateThawing
			}
		}
		thawDeadline = time.After(f.opts.Timeout + thawWaitExtra)
	}
	var follow <-chan time.Time
	if len(sel.Selectors) > 0 {
		t := time.NewTicker(followEvery)
		defer t.Stop()
		follow = t.C
	}
	reported := map[string]bool{}
	signals := 0

	for active > 0 {
		select {
		case u := <-updates:
			v := views[u.s.pod.Name]
			if u.done {
				v.done = true
				active--
			}
			if u.line != nil && f.json {
				_, _ = f.stdout.Write(u.line)
			}
			if u.err != nil && u.state == "" {
				fmt.Fprintf(f.stderr, "kubectl-freeze: pod/%s: %v\n", u.s.pod.Name, u.err)
				continue
			}
			if stopping && u.event != nil && u.event.Event == contract.EventNotStarted {
				// Stopped before the word: nothing was frozen, as asked.
				u.state = stateCancelled
			}
			f.apply(v, u)
			if v.state == stateFailed || v.state == stateLost {
				failed = true
				if !f.allowPartial {
					stopAll(fmt.Sprintf("pod/%s %s: all or nothing; --allow-partial keeps the others", u.s.pod.Name, v.state))
				}
			}
			if !announced && !stopping && allFrozen(views) {
				announced = true
				f.table(views, order)
				fmt.Fprintf(f.human(), "all %d pod(s) frozen in %v; Ctrl-C or SIGTERM thaws them%s\n", len(views), time.Since(start).Round(10*time.Millisecond), durationNote(f.opts.Duration))
			}
		case s := <-f.sigs:
			signals++
			if signals == 1 {
				stopAll("signal " + s.String())
				continue
			}
			fmt.Fprintf(f.stderr, "kubectl-freeze: second signal: exiting without waiting; each agent thaws when its stdin closes (now, as the plugin exits)\n")
			return exitUnconfirmed
		case <-thawDeadline:
			fmt.Fprintf(f.stderr, "kubectl-freeze: gave up waiting for the agents to confirm their thaw after %v\n", f.opts.Timeout+thawWaitExtra)
			f.table(views, order)
			return exitUnconfirmed
		case <-follow:
			if stopping {
				continue
			}
			for _, p := range f.newPods(ctx, sel, views, reported) {
				if f.follow {
					fmt.Fprintf(f.human(), "pod/%s appeared: freezing it too (--follow)\n", p.Name)
					startPod(p)
					announced = false
				} else {
					fmt.Fprintf(f.human(), "pod/%s appeared while holding: not frozen (--follow freezes new pods)\n", p.Name)
				}
			}
		}
	}
	f.table(views, order)
	return f.result(views, order, failed)
}

// apply moves a pod's view on and prints the change in text mode.
func (f *freezeCmd) apply(v *podView, u update) {
	prev := v.state
	if u.state != "" && (rank[u.state] >= rank[prev] || u.state == stateFrozen) {
		// Progress only moves on: a late "freezing" (the word said) does
		// not undo "frozen"; a repair after "thawing" is still frozen.
		v.state = u.state
	}
	if e := u.event; e != nil {
		if e.Processes != nil {
			v.processes, v.awaitCount = e.Processes, false
		} else if e.Event == contract.EventFrozen && e.Schema >= 2 {
			v.awaitCount = true
		}
		if e.Event == contract.EventFrozen {
			v.since, v.froze = time.Now(), true
		}
		if e.ExitCode != nil {
			v.code = e.ExitCode
		}
		if e.Event == contract.EventError || (e.Event == contract.EventNotStarted && u.state != stateCancelled) {
			msg := e.Error
			if msg == "" {
				msg = e.Event + " " + e.Reason
			}
			v.err = errors.New(msg)
		}
		if e.Event == contract.EventEnded {
			v.err = fmt.Errorf("the hold ended: %s", e.Reason)
		}
	}
	if u.err != nil {
		v.err = u.err
	}
	if u.code != nil {
		v.code = u.code
	}
	if v.state == v.shown || f.json || (v.state == stateFrozen && v.awaitCount) {
		return
	}
	v.shown = v.state
	line := fmt.Sprintf("pod/%s: %s", v.s.pod.Name, v.state)
	switch v.state {
	case stateFrozen:
		n := "?"
		if v.processes != nil {
			n = fmt.Sprint(*v.processes)
		}
		line += fmt.Sprintf(" (%s processes, node %s, container %s)", n, v.s.ref.Node, v.s.ref.Container)
	case stateFailed, stateLost, stateEnded:
		if v.err != nil {
			line += ": " + v.err.Error()
		}
		if v.code != nil {
			line += fmt.Sprintf(" (exit %d)", *v.code)
		}
	}
	fmt.Fprintln(f.stdout, line)
}

// rank orders the states of a pod's progress.
var rank = map[string]int{stateAdding: 0, stateStarting: 1, stateFreezing: 2, stateFrozen: 3, stateThawing: 4,
	stateThawed: 5, stateEnded: 5, stateFailed: 5, stateLost: 5, stateCancelled: 5}

func allFrozen(views map[string]*podView) bool {
	for _, v := range views {
		if v.state != stateFrozen || v.awaitCount {
			return false
		}
	}
	return len(views) > 0
}

func durationNote(d time.Duration) string {
	if d > 0 {
		return fmt.Sprintf(", or --duration %v", d)
	}
	return ""
}

// table prints every pod's node, container, state, processes and since.
func (f *freezeCmd) table(views map[string]*podView, order []string) {
	tw := tabwriter.NewWriter(f.human(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tCONTAINER\tSTATE\tPROCESSES\tSINCE")
	for _, name := range order {
		v := views[name]
		procs, since := "-", "-"
		if v.processes != nil {
			procs = fmt.Sprint(*v.processes)
		}
		if !v.since.IsZero() {
			since = v.since.Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, orDash(v.s.ref.Node), orDash(v.s.ref.Container), v.state, procs, since)
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// result is the exit code once every session ended.
func (f *freezeCmd) result(views map[string]*podView, order []string, failed bool) int {
	code, froze := exitOK, false
	var reasons []string
	for _, name := range order {
		v := views[name]
		froze = froze || v.froze
		switch v.state {
		case stateFrozen, stateThawing, stateLost:
			code = exitUnconfirmed
			reasons = append(reasons, fmt.Sprintf("pod/%s: not confirmed thawed: %v", name, v.err))
		case stateFailed:
			r := fmt.Sprintf("pod/%s: %v", name, v.err)
			if v.code != nil {
				r += fmt.Sprintf(" (exit %d)", *v.code)
			}
			if v.froze {
				// Its agent died while holding (SIGKILL, OOM): nothing
				// thawed it, so it may still be frozen.
				code = exitUnconfirmed
				r = fmt.Sprintf("pod/%s: frozen, then not confirmed thawed: %v", name, v.err)
				if v.code != nil {
					r += fmt.Sprintf(" (exit %d)", *v.code)
				}
				r += "; see kubectl freeze status, and kubectl freeze thaw if it stayed frozen"
			}
			reasons = append(reasons, r)
		}
	}
	for _, r := range reasons {
		fmt.Fprintf(f.stderr, "kubectl-freeze: %s\n", r)
	}
	if code == exitOK && failed && (!f.allowPartial || !froze) {
		code = exitFailed
	}
	return code
}

// newPods lists the targets' selectors for running pods not seen yet.
func (f *freezeCmd) newPods(ctx context.Context, sel *Selection, views map[string]*podView, reported map[string]bool) []*corev1.Pod {
	var out []*corev1.Pod
	for _, s := range sel.Selectors {
		l, err := f.client.CoreV1().Pods(f.namespace).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
		if err != nil {
			fmt.Fprintf(f.stderr, "kubectl-freeze: list pods for --follow: %v\n", err)
			continue
		}
		for i := range l.Items {
			p := &l.Items[i]
			if views[p.Name] != nil || reported[p.Name] || notFreezable(*p) != "" {
				continue
			}
			if _, _, err := targetContainer(p, f.container); err != nil {
				continue // not running yet: next round
			}
			reported[p.Name] = true
			out = append(out, p)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
