package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cgfreeze/cgfreeze/contract"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Attacher attaches to a running container's stdin, stdout and stderr and
// returns when the stream ends (the container's output closed, or ctx).
// The real one is attach.go's; unit tests give a fake agent.
type Attacher interface {
	Attach(ctx context.Context, namespace, pod, container string, stdin io.Reader, stdout, stderr io.Writer) error
}

// Bounds of a session.
const (
	// pollEvery is how often a session reads its pod while it waits for
	// the agent to run or end.
	pollEvery = 500 * time.Millisecond
	// logTail is how many lines of an agent's log are read for its last
	// event.
	logTail = 50
)

// Pod states, as the plugin shows them.
const (
	stateAdding   = "adding"   // the ephemeral container is being added
	stateStarting = "starting" // added, waiting for it to run (image pull)
	stateFreezing = "freezing" // attached, start said, no frozen event yet
	stateFrozen   = "frozen"
	stateThawing  = "thawing" // stdin closed, no thawed event yet
	stateThawed   = "thawed"
	stateEnded    = "ended"  // the hold ended without the agent's thaw (target gone, thawed by other)
	stateFailed   = "failed" // refused or failed; the pod runs (or, exit 10, may not)
	stateLost     = "lost"   // the stream ended without a last word
	// stateCancelled: stopped before its agent froze anything (not_started,
	// or stopped before the agent ran: its start gate ends it).
	stateCancelled = "cancelled"
)

// update is what a session tells the coordinator.
type update struct {
	s     *session
	state string
	// event is the agent's event that caused it (nil for the plugin's own),
	// line its JSON line.
	event *contract.Event
	line  []byte
	// err says why the state is failed or lost.
	err  error
	code *int
	done bool // the session ended
}

// session is one pod's agent, from its creation to its end.
type session struct {
	client  kubernetes.Interface
	attach  Attacher
	opts    agentOptions
	updates chan<- update
	// runningTimeout bounds the wait for the agent to run.
	runningTimeout time.Duration

	pod       *corev1.Pod
	container string // -c, or "" for the default
	ref       podRef // filled as it becomes known

	mu       sync.Mutex
	stopped  bool
	said     bool // the start word reached the attach stream's stdin
	stdinW   *io.PipeWriter
	stopCh   chan struct{}
	stopOnce sync.Once
}

func newSession(c kubernetes.Interface, a Attacher, o agentOptions, p *corev1.Pod, container string, runningTimeout time.Duration, updates chan<- update) *session {
	return &session{client: c, attach: a, opts: o, updates: updates, runningTimeout: runningTimeout,
		pod: p, container: container, ref: podRef{Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName},
		stopCh: make(chan struct{})}
}

// stop ends the hold: it closes the agent's stdin (the agent thaws and
// exits), or keeps an agent not yet attached from ever being told to start
// (its start gate ends it).
func (s *session) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		w := s.stdinW
		s.mu.Unlock()
		close(s.stopCh)
		if w != nil {
			_ = w.Close()
		}
	})
}

func (s *session) send(u update) {
	u.s = s
	s.updates <- u
}

func (s *session) fail(state string, err error, code *int) {
	var line []byte
	if state == stateFailed || state == stateLost {
		line = pluginEvent(contract.EventError, err.Error(), code, s.ref)
	}
	s.send(update{state: state, err: err, code: code, line: line, done: true})
}

// run is the session's life: add the agent, wait for it to run, attach,
// say start, relay events and heartbeats until the stream ends.
func (s *session) run(ctx context.Context) {
	name, id, err := targetContainer(s.pod, s.container)
	if err != nil {
		s.fail(stateFailed, err, nil)
		return
	}
	s.ref.Container = name
	s.ref.Agent = agentName(s.pod, AgentPrefix)
	s.send(update{state: stateAdding})
	ec := agentContainer(s.ref.Agent, name, freezeArgs(id, s.opts), true, s.opts)
	if err := addAgent(ctx, s.client, s.pod, ec); err != nil {
		s.fail(stateFailed, err, nil)
		return
	}
	s.send(update{state: stateStarting})
	st, err := s.waitRunning(ctx)
	if errors.Is(err, errStoppedEarly) {
		s.send(update{state: stateCancelled, err: fmt.Errorf("stopped before the agent %s ran: it ends by itself within %v of starting, without freezing", s.ref.Agent, StartTimeout), done: true})
		return
	}
	if err != nil {
		s.fail(stateFailed, err, nil)
		return
	}
	if st.State.Terminated != nil {
		s.finishFromLog(ctx, st)
		return
	}
	s.attachAndHold(ctx)
}

// waitRunning waits until the agent runs or has ended, or fails: an image
// that cannot be pulled, the timeout, a stop.
func (s *session) waitRunning(ctx context.Context) (*corev1.ContainerStatus, error) {
	deadline := time.Now().Add(s.runningTimeout)
	for {
		p, err := s.client.CoreV1().Pods(s.pod.Namespace).Get(ctx, s.pod.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("read pod %s while its agent %s starts: %w", s.pod.Name, s.ref.Agent, err)
		}
		if st := agentStatus(p, s.ref.Agent); st != nil {
			switch {
			case st.State.Running != nil, st.State.Terminated != nil:
				return st, nil
			case st.State.Waiting != nil && fatalWaiting[st.State.Waiting.Reason]:
				return nil, fmt.Errorf("the agent %s cannot start: %s: %s (image %s; see --image and --image-pull-policy; it never froze anything)",
					s.ref.Agent, st.State.Waiting.Reason, st.State.Waiting.Message, s.opts.Image)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the agent %s did not run within %v (--pod-running-timeout); it will end by itself within %v of starting, without freezing", s.ref.Agent, s.runningTimeout, StartTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stopCh:
			return nil, errStoppedEarly
		case <-time.After(pollEvery):
		}
	}
}

// errStoppedEarly: the session was stopped before its agent ran.
var errStoppedEarly = errors.New("stopped before the agent ran")

// fatalWaiting are the waiting reasons of a container that will not start
// without a change of its spec.
var fatalWaiting = map[string]bool{
	"ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// attachAndHold attaches to the running agent and relays until its output
// ends.
func (s *session) attachAndHold(ctx context.Context) {
	pr, pw := io.Pipe()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		// Told to stop before the word: attach with stdin closed, so the
		// agent ends now (not_started) rather than after its start gate.
		_ = pw.Close()
	} else {
		s.stdinW = pw
		s.mu.Unlock()
		go s.speak(pw)
	}
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	attachDone := make(chan error, 1)
	go func() {
		err := s.attach.Attach(ctx, s.pod.Namespace, s.pod.Name, s.ref.Agent, pr, outW, &lockedWriter{w: &stderr})
		_ = outW.Close()
		attachDone <- err
	}()
	var last *contract.Event
	sc := bufio.NewScanner(outR)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		e, err := parseEvent(line)
		if err != nil {
			s.send(update{err: err})
			continue
		}
		last = &e
		s.send(update{state: stateOf(e), event: &e, line: s.withPod(line)})
	}
	_, _ = io.Copy(io.Discard, outR)
	err := <-attachDone
	s.stop() // the heartbeat ends with the stream
	if last != nil && final(last.Event) {
		s.send(update{state: stateOf(*last), done: true})
		return
	}
	// No last word on the stream: the agent may have said it before we
	// listened, or the stream broke. Its log and status tell.
	if st := s.readStatus(ctx); st != nil && st.State.Terminated != nil {
		s.finishFromLog(ctx, st)
		return
	}
	msg := "the attach stream ended without the agent's last event"
	if err != nil {
		msg = fmt.Sprintf("the attach to the agent %s ended: %v", s.ref.Agent, err)
	}
	if e := strings.TrimSpace(stderr.String()); e != "" {
		msg += " (agent: " + lastLine(e) + ")"
	}
	s.mu.Lock()
	said := s.said
	s.mu.Unlock()
	if !said {
		// The word never left: the agent cannot have frozen anything,
		// and its start gate ends it.
		s.fail(stateFailed, fmt.Errorf("%s; it never got the word to freeze and ends by itself within %v", msg, StartTimeout), nil)
		return
	}
	s.fail(stateLost, errors.New(msg+"; the agent thaws when its stdin closes (stdinOnce) or after the heartbeat bound; see kubectl freeze status"), nil)
}

// speak writes the agent's first word, then a heartbeat every
// HeartbeatEvery, until stop closes the pipe.
func (s *session) speak(pw *io.PipeWriter) {
	if _, err := pw.Write([]byte("start\n")); err != nil {
		return
	}
	s.mu.Lock()
	s.said = true
	s.mu.Unlock()
	s.send(update{state: stateFreezing})
	t := time.NewTicker(HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stopCh:
			return
		case <-t.C:
			if _, err := pw.Write([]byte("beat\n")); err != nil {
				return
			}
		}
	}
}

// readStatus reads the agent's status, or nil.
func (s *session) readStatus(ctx context.Context) *corev1.ContainerStatus {
	// The kubelet reports a terminated container within a few seconds.
	for range 10 {
		p, err := s.client.CoreV1().Pods(s.pod.Namespace).Get(ctx, s.pod.Name, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		if st := agentStatus(p, s.ref.Agent); st != nil && st.State.Terminated != nil {
			return st
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pollEvery):
		}
	}
	return nil
}

// finishFromLog ends a session whose agent has terminated, from its log's
// last event and its exit code.
func (s *session) finishFromLog(ctx context.Context, st *corev1.ContainerStatus) {
	code := int(st.State.Terminated.ExitCode)
	e := lastEvent(ctx, s.client, s.pod.Namespace, s.pod.Name, s.ref.Agent)
	if e != nil {
		var line []byte
		if b, err := jsonLine(*e); err == nil {
			line = s.withPod(b)
		}
		s.send(update{state: stateOf(*e), event: e, line: line})
		if final(e.Event) && e.Event != contract.EventError {
			s.send(update{state: stateOf(*e), done: true})
			return
		}
	}
	msg := fmt.Sprintf("the agent %s exited %d", s.ref.Agent, code)
	if e != nil && e.Error != "" {
		msg = e.Error
	}
	s.fail(stateFailed, errors.New(msg), &code)
}

// stateOf is the pod's state after an agent's event.
func stateOf(e contract.Event) string {
	switch e.Event {
	case contract.EventWaiting:
		return stateFreezing
	case contract.EventFrozen, contract.EventHolding, contract.EventConnectionsDropped, contract.EventRepaired, contract.EventViolation, contract.EventOutputOverflow:
		return stateFrozen
	case contract.EventThawed, contract.EventRecovered, contract.EventNothingToThaw:
		return stateThawed
	case contract.EventEnded:
		return stateEnded
	case contract.EventError, contract.EventNotStarted:
		return stateFailed
	}
	return ""
}

// final: an event after which the agent ends.
func final(event string) bool {
	switch event {
	case contract.EventThawed, contract.EventEnded, contract.EventError, contract.EventNotStarted,
		contract.EventRecovered, contract.EventNothingToThaw:
		return true
	}
	return false
}

// lastEvent reads the last cgfreeze event of an agent's log, or nil.
func lastEvent(ctx context.Context, c kubernetes.Interface, ns, pod, agent string) *contract.Event {
	n := int64(logTail)
	b, err := c.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: agent, TailLines: &n}).DoRaw(ctx)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if e, err := parseEvent([]byte(lines[i])); err == nil {
			return &e
		}
	}
	return nil
}

// withPod is the agent's event line with the pod added (-o json), or nil.
func (s *session) withPod(line []byte) []byte {
	b, err := withPod(line, s.ref)
	if err != nil {
		return nil
	}
	return b
}

func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	return lines[len(lines)-1]
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
