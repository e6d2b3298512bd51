package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/cgfreeze/cgfreeze/contract"
)

// podRef is the pod object added to every cgfreeze event with -o json. The
// key "pod" is not a field of cgfreeze's events (contract.Event; a unit
// test checks), so nothing of the agent's event is shadowed.
type podRef struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Node      string `json:"node,omitempty"`
	Container string `json:"container,omitempty"`
	// Agent is the ephemeral container that runs cgfreeze.
	Agent string `json:"agent,omitempty"`
}

// withPod returns an agent's JSON event line with "pod" added as its last
// key, the agent's keys untouched and in their order.
func withPod(line []byte, p podRef) ([]byte, error) {
	line = bytes.TrimSpace(line)
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
		return nil, fmt.Errorf("not a JSON object: %q", line)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %q: %w", line, err)
	}
	if _, ok := probe["pod"]; ok {
		return nil, fmt.Errorf("the event already has a pod key: %q", line)
	}
	pj, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(line[:len(line)-1])
	if len(probe) > 0 {
		b.WriteByte(',')
	}
	b.WriteString(`"pod":`)
	b.Write(pj)
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// parseEvent decodes one line of an agent's stdout.
func parseEvent(line []byte) (contract.Event, error) {
	var e contract.Event
	if err := json.Unmarshal(bytes.TrimSpace(line), &e); err != nil {
		return e, fmt.Errorf("an agent's output %q is not a cgfreeze event: %w", line, err)
	}
	if e.Event == "" {
		return e, fmt.Errorf("an agent's output %q has no event name", line)
	}
	return e, nil
}

// pluginEvent is an event of the plugin's own (-o json), for what happens
// to a pod outside its agent's events: the agent could not be added or
// started, or its stream was lost. It has the shape of cgfreeze's error
// event.
func pluginEvent(name, msg string, code *int, p podRef) []byte {
	b, _ := json.Marshal(struct {
		Event    string `json:"event"`
		Error    string `json:"error,omitempty"`
		ExitCode *int   `json:"exit_code,omitempty"`
		Pod      podRef `json:"pod"`
	}{name, msg, code, p})
	return append(b, '\n')
}

func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
