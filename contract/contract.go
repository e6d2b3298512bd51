// Package contract is what cgfreeze promises to its callers: the events it
// writes on stdout and the exit codes it ends with. It imports nothing
// OS-specific, so that a caller on any platform (a controller that runs
// cgfreeze through kubectl, a test harness) can decode cgfreeze's output
// with the same types. docs/usage.md documents every field, event and
// code; the tests check that the two agree.
package contract

// Event names: the value of Event.Event.
const (
	EventFrozen             = "frozen"              // the freeze is confirmed
	EventHolding            = "holding"             // right after frozen: the processes the freeze holds (schema 2)
	EventConnectionsDropped = "connections_dropped" // --drop-connections, right after frozen
	EventRepaired           = "repaired"            // the hold put part of the freeze back
	EventViolation          = "violation"           // something of the target may run, and could not be frozen again
	EventThawed             = "thawed"              // cgfreeze thawed the target
	EventEnded              = "ended"               // the hold ended without cgfreeze's own thaw (Reason says why)
	EventOutputOverflow     = "output_overflow"     // Count events were dropped while stdout was blocked
	EventError              = "error"               // the command failed; ExitCode says how
	EventStatus             = "status"              // cgfreeze status
	EventRecovered          = "recovered"           // a freeze that a cgfreeze left was undone
	EventNothingToThaw      = "nothing_to_thaw"     // cgfreeze thaw found nothing to undo
)

// Events is every event name (those of the start gate, gate.go, too), in
// the order the man page lists them. A test keeps it complete.
var Events = []string{EventFrozen, EventHolding, EventConnectionsDropped, EventRepaired, EventViolation,
	EventThawed, EventEnded, EventWaiting, EventNotStarted, EventOutputOverflow, EventError, EventStatus,
	EventRecovered, EventNothingToThaw}

// Reasons: the value of Event.Reason.
const (
	// thawed
	ReasonSignal         = "signal"          // SIGINT, SIGTERM or SIGHUP
	ReasonDuration       = "duration"        // --duration passed
	ReasonStdin          = "stdin"           // --lease stdin: stdin reached EOF
	ReasonParent         = "parent"          // --lease parent: the parent exited
	ReasonOutputClosed   = "output_closed"   // stdout was closed: the caller is gone
	ReasonSupervisorGone = "supervisor_gone" // the holder's supervisor died
	// ended
	ReasonTargetGone    = "target_gone"     // the target's cgroup emptied or was removed
	ReasonThawedByOther = "thawed_by_other" // the target's owner or runtime thawed it
	// recovered
	ReasonWatchdog = "watchdog" // the holder died and its supervisor undid the freeze
	ReasonLeftover = "leftover" // a new freeze first undid a dead cgfreeze's freeze
)

// Schema is the version of the event contract. It grows when a field or
// an event changes meaning or goes away; new fields and events keep it.
// Schema 2: frozen no longer carries processes; the holding event that
// follows it does (the count no longer delays the confirmation).
const Schema = 2

// TimeFormat is the format of Event.Time: RFC 3339 with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Event is one line on stdout: a JSON object with -o json, or
// "event key=value ..." in text mode. Fields that do not apply to an event
// are left out.
type Event struct {
	Event string `json:"event"`
	// Time is when the event happened (not when it was written: output
	// may lag), RFC 3339 in UTC with microseconds (TimeFormat).
	Time string `json:"time,omitempty"`
	// Schema is the version of this contract (Schema), in JSON only.
	Schema int `json:"schema,omitempty"`

	PID       int     `json:"pid,omitempty"`
	Cgroup    string  `json:"cgroup,omitempty"`
	Version   int     `json:"version,omitempty"`
	Strategy  string  `json:"strategy,omitempty"`
	Processes *int    `json:"processes,omitempty"`
	ElapsedMS float64 `json:"elapsed_ms,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	Signal    string  `json:"signal,omitempty"`
	HeldMS    float64 `json:"held_ms,omitempty"`
	State     string  `json:"state,omitempty"`
	FrozenBy  string  `json:"frozen_by,omitempty"`
	Holder    int     `json:"holder,omitempty"`
	Namespace string  `json:"namespace,omitempty"`
	Held      *bool   `json:"held,omitempty"`
	// repaired, violation
	What      string  `json:"what,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	// connections_dropped (count: output_overflow too)
	Count       *int          `json:"count,omitempty"`
	Connections *[]Connection `json:"connections,omitempty"`
	Shared      []Connection  `json:"shared,omitempty"`
	Filtered    int           `json:"filtered,omitempty"`
	Hidden      int           `json:"hidden,omitempty"`
	Warning     string        `json:"warning,omitempty"`
	Error       string        `json:"error,omitempty"`
	ExitCode    *int          `json:"exit_code,omitempty"`

	ContainerID string `json:"container_id,omitempty"`
}

// Connection is one entry of a connections_dropped event.
type Connection struct {
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	PID       int    `json:"pid"`
	Direction string `json:"direction"`
}

// VersionInfo is what `cgfreeze version -o json` prints.
type VersionInfo struct {
	Version string `json:"version"`          // the release, or "dev"
	Commit  string `json:"commit,omitempty"` // the VCS revision it was built from
	Go      string `json:"go"`               // the Go toolchain that built it
	Schema  int    `json:"schema"`           // the event contract's version (Schema)
}
