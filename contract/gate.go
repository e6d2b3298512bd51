package contract

// The start gate and the heartbeat (--start-timeout, --heartbeat): what a
// remote caller (kubectl-freeze, through an ephemeral container's attached
// stdin) needs to close two gaps of --lease stdin. An agent whose caller
// never attaches must not freeze, and must end by itself; a caller whose
// connection dies without a reset (a suspended laptop) must not keep the
// target frozen until TCP notices.
const (
	// EventWaiting: the target is resolved and the agent waits for its
	// caller's first word on stdin before it freezes anything.
	EventWaiting = "waiting"
	// EventNotStarted: the agent ended before its caller's first word;
	// nothing was changed. Reason says why, ExitCode is the exit code.
	EventNotStarted = "not_started"

	// ReasonStartTimeout: not_started, no word on stdin within
	// --start-timeout.
	ReasonStartTimeout = "start_timeout"
	// ReasonHeartbeat: thawed, stdin stayed silent for longer than
	// --heartbeat.
	ReasonHeartbeat = "heartbeat"

	// ExitNotStarted: --start-timeout, and the caller never said its
	// first word (it timed out, stdin closed first, or a signal came):
	// nothing was changed.
	ExitNotStarted = 17
)
