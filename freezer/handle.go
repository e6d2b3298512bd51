package freezer

// Handle is what another process needs to reach a resolved target without
// resolving it again (Share, Open): the holder that takes a hold over
// reaches the target through the supervisor's mount, so that it does not
// depend on the process the target was resolved from, which may die
// meanwhile (a frozen v2 process still dies of SIGKILL).
type Handle struct {
	PID              int      `json:"pid"`
	ContainerID      string   `json:"container_id,omitempty"`
	Version          int      `json:"version"`
	Path             string   `json:"path"`
	Strategy         Strategy `json:"strategy"`
	EnteredNamespace bool     `json:"entered_namespace,omitempty"`
	Controllers      []string `json:"controllers,omitempty"`
}
