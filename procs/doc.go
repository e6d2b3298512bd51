// Package procs reads what cgfreeze needs to know about processes from a proc
// filesystem: which cgroups a process is in, which namespaces it belongs to,
// the PIDs a cgroup.procs file lists, and which containers the visible
// processes belong to (Containers, MatchContainers: container IDs found in
// cgroup paths, also as "/../<id>" from a sibling cgroup namespace).
//
// Every function takes the proc root (normally "/proc") so that tests can run
// it over a fake tree; parsers take an io.Reader. Paths in /proc/<pid>/cgroup
// are relative to the cgroup namespace of the thread that reads the file, so
// callers that care about namespaces read it on the right thread.
package procs
