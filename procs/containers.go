package procs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Process is one visible process, as Containers reports it.
type Process struct {
	// PID is its PID in the proc filesystem's PID namespace.
	PID int
	// Cgroup is its cgroup path in the hierarchy Containers looked at, as
	// the reader's cgroup namespace shows it.
	Cgroup string
	// Command is its command line (arguments joined by spaces), or its
	// name in brackets when it has none (a kernel thread, a zombie), for
	// the first process of each Container only, the one Container.String
	// shows; empty for the others. Reading every process's command line
	// cost Containers a third of its time, for messages that show one
	// process a container.
	Command string
}

// Container is a group of visible processes that belong to one container:
// the processes of one cgroup that carries a container ID, and of every
// cgroup below it.
type Container struct {
	// ID is the container ID read from the cgroup path (see ContainerID),
	// or, for a cgroup whose path carries none, the last segment of the
	// path without ".scope".
	ID string
	// HasID tells whether ID is a real container ID (64 hex digits) rather
	// than a cgroup's name.
	HasID bool
	// Cgroup is the container's cgroup path, as the reader's cgroup
	// namespace shows it: "/../<id>" for a container outside that
	// namespace (an ephemeral container looking at the pod's others).
	Cgroup string
	// Processes are its processes, by ascending PID.
	Processes []Process
}

// idLen is the length of a container ID: 64 hex digits (a SHA-256), as
// Docker, containerd and CRI-O make them.
const idLen = 64

// ContainerID returns the container ID in one segment of a cgroup path, and
// false when the segment names no container. A segment names one when it is
// the 64-hex-digit ID alone (cgroupfs driver: /docker/<id>,
// /kubepods/<qos>/pod<uid>/<id>) or the ID inside a systemd scope with the
// runtime's prefix (docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope). CRI-O's conmon scope
// (crio-conmon-<id>.scope) holds the monitor, not the container, and is no
// container. (Hand-written rather than a regexp: the regexp package would
// add a tenth to the binary.)
func ContainerID(segment string) (string, bool) {
	s := strings.TrimSuffix(segment, ".scope")
	if len(s) < idLen || strings.HasPrefix(s, "crio-conmon-") {
		return "", false
	}
	prefix, id := s[:len(s)-idLen], s[len(s)-idLen:]
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	if prefix == "" {
		return id, true
	}
	// A runtime's prefix: a lower-case word, dashes allowed, ending in "-".
	if !strings.HasSuffix(prefix, "-") || prefix[0] < 'a' || prefix[0] > 'z' {
		return "", false
	}
	for _, c := range prefix {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return "", false
		}
	}
	return id, true
}

// ContainerOf returns the cgroup of the container that cgroup path p
// belongs to and its ID: the path down to its first segment that carries
// a container ID (the shallowest: a container's own sub-cgroups, or a
// container nested in it, belong to it). For a path without one it returns
// p itself, its last segment without ".scope" as the name, and false.
func ContainerOf(p string) (cgroup, id string, hasID bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		if id, ok := ContainerID(s); ok {
			return "/" + strings.Join(segs[:i+1], "/"), id, true
		}
	}
	return p, strings.TrimSuffix(path.Base(p), ".scope"), false
}

// Containers groups the processes visible in procRoot by container. It
// reads every <procRoot>/<pid>/cgroup and takes the path of the v1 freezer
// hierarchy (version 1) or of cgroup2 (version 2); processes without that
// hierarchy, processes that exit meanwhile, and dead ones (zombies, see
// Dead) are left out. The paths are
// those of the reader's cgroup namespace, so a container outside it reads
// "/../<id>" and its ID is still found.
//
// A container is the cgroup named by a container ID (see ContainerID) and
// everything below it. A cgroup without an ID is a group of its own, or
// part of the group of an ancestor without an ID other than the namespace
// root, so that a container's own sub-cgroups stay with it. The result is
// sorted by cgroup path.
func Containers(procRoot string, version int) ([]Container, error) {
	if version != 1 && version != 2 {
		return nil, fmt.Errorf("cgroup version %d: want 1 or 2", version)
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	groups := map[string]*Container{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		cg, err := ReadCgroups(procRoot, pid)
		if err != nil {
			if errors.Is(err, ErrNoProcess) {
				continue // exited meanwhile
			}
			return nil, err
		}
		p, ok := hierarchyPath(cg, version)
		if !ok || Dead(procRoot, pid) {
			continue
		}
		key, id, hasID := ContainerOf(p)
		c := groups[key]
		if c == nil {
			c = &Container{ID: id, HasID: hasID, Cgroup: key}
			groups[key] = c
		}
		c.Processes = append(c.Processes, Process{PID: pid, Cgroup: p})
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	// Parents sort before their children, so a group without an ID finds
	// the ancestor it joins already kept.
	sort.Strings(keys)
	var out []*Container
	for _, k := range keys {
		c := groups[k]
		if !c.HasID {
			if parent := groupAbove(out, c.Cgroup); parent != nil {
				parent.Processes = append(parent.Processes, c.Processes...)
				continue
			}
		}
		out = append(out, c)
	}
	result := make([]Container, len(out))
	for i, c := range out {
		slices.SortFunc(c.Processes, func(a, b Process) int { return a.PID - b.PID })
		c.Processes[0].Command = command(procRoot, c.Processes[0].PID)
		result[i] = *c
	}
	return result, nil
}

// groupAbove returns the kept group without an ID whose cgroup is an
// ancestor of p, other than a namespace's root ("/" or "/..", which would
// swallow everything).
func groupAbove(kept []*Container, p string) *Container {
	for i := len(kept) - 1; i >= 0; i-- {
		c := kept[i]
		if !c.HasID && c.Cgroup != "/" && c.Cgroup != "/.." && Below(c.Cgroup, p) {
			return c
		}
	}
	return nil
}

// Below tells whether cgroup path b is a or lies below a, comparing the
// paths as text: unlike IsAncestor it also relates paths outside the
// reader's namespace ("/../x/y" is below "/../x"). Both paths must be read
// in the same cgroup namespace.
func Below(a, b string) bool {
	if a == "/" {
		return !Outside(b)
	}
	return a == b || strings.HasPrefix(b, a+"/")
}

func hierarchyPath(cg Cgroups, version int) (string, bool) {
	if version == 1 {
		p, ok := cg.V1["freezer"]
		return p, ok
	}
	return cg.Unified, cg.HasUnified
}

// command returns pid's command line for messages, or [comm] when it has
// none, or "?" when it cannot be read.
func command(procRoot string, pid int) string {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if b, err := ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		if s := strings.TrimSpace(string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '}))); s != "" {
			return s
		}
	}
	if b, err := ReadFile(filepath.Join(dir, "comm")); err == nil {
		return "[" + strings.TrimSpace(string(b)) + "]"
	}
	return "?"
}

// MatchContainers returns the containers whose ID starts with id, ignoring
// case. A "runtime://" prefix, as Kubernetes prints container IDs in a
// pod's status (containerd://<id>, cri-o://<id>, docker://<id>), is
// dropped first. Only containers with a real ID are matched; when one ID
// matches in full, it alone is returned.
func MatchContainers(cs []Container, id string) []Container {
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	id = strings.ToLower(strings.TrimSpace(id))
	if id == "" {
		return nil
	}
	var out []Container
	for _, c := range cs {
		if !c.HasID {
			continue
		}
		if c.ID == id {
			return []Container{c}
		}
		if strings.HasPrefix(c.ID, id) {
			out = append(out, c)
		}
	}
	return out
}

// String describes the container in one line for messages: its cgroup,
// ID, process count and first process.
func (c Container) String() string {
	var b strings.Builder
	b.WriteString(c.Cgroup)
	if c.HasID {
		fmt.Fprintf(&b, " (id %s)", c.ID)
	}
	n := len(c.Processes)
	plural := "es"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, ": %d process%s", n, plural)
	if n > 0 {
		p := c.Processes[0]
		cmd := p.Command
		if len(cmd) > 60 {
			cmd = cmd[:57] + "..."
		}
		fmt.Fprintf(&b, ", PID %d %q", p.PID, cmd)
	}
	return b.String()
}
