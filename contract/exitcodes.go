package contract

// Exit codes of cgfreeze. Every way a command ends that the program
// controls ends with one of these; docs/usage.md has the table with what to
// do about each. Codes 20 and above are the states of `cgfreeze status
// --exit-code` (StatusCodes).
const (
	ExitOK             = 0
	ExitError          = 1
	ExitUsage          = 2
	ExitNoTarget       = 3
	ExitUnsafeTarget   = 4
	ExitNotPrivileged  = 5
	ExitNoFreezer      = 6
	ExitReadOnly       = 7
	ExitAlreadyFrozen  = 8
	ExitFreezeFailed   = 9
	ExitThawFailed     = 10
	ExitDropFailed     = 11
	ExitHolderDied     = 12
	ExitTargetGone     = 13
	ExitThawedByOther  = 14
	ExitOutputClosed   = 15
	ExitSupervisorGone = 16
	// ExitNotStarted = 17: gate.go.
)

// ExitCode is one exit code and what it means.
type ExitCode struct {
	Code    int
	Name    string
	Meaning string
}

// ExitCodes lists every exit code, in order.
var ExitCodes = []ExitCode{
	{ExitOK, "ok", "success (for freeze: frozen, held and thawed)"},
	{ExitError, "error", "an error without a code of its own"},
	{ExitUsage, "usage", "bad command line, or an ambiguous --container-id"},
	{ExitNoTarget, "no_target", "the target process or container does not exist"},
	{ExitUnsafeTarget, "unsafe_target", "the target is refused"},
	{ExitNotPrivileged, "not_privileged", "not privileged"},
	{ExitNoFreezer, "no_freezer", "no cgroup freezer"},
	{ExitReadOnly, "read_only", "the cgroup filesystem is read-only"},
	{ExitAlreadyFrozen, "already_frozen", "the target is frozen by someone else, or a live cgfreeze holds it"},
	{ExitFreezeFailed, "freeze_failed", "the freeze did not complete and was rolled back"},
	{ExitThawFailed, "thaw_failed", "a thaw did not complete: the target may still be frozen"},
	{ExitDropFailed, "drop_failed", "--drop-connections=required could not drop; the target was thawed"},
	{ExitHolderDied, "holder_died", "the holder died and its supervisor thawed the target"},
	{ExitTargetGone, "target_gone", "the target went away during the hold: nothing is left frozen"},
	{ExitThawedByOther, "thawed_by_other", "the target's owner or runtime thawed it during the hold"},
	{ExitOutputClosed, "output_closed", "stdout was closed (the caller is gone); the target was thawed first"},
	{ExitSupervisorGone, "supervisor_gone", "the holder's supervisor died; the holder thawed the target and ended"},
	{ExitNotStarted, "not_started", "--start-timeout: the caller never said its first word on stdin; nothing was changed"},
}

// Exit codes of `cgfreeze status --exit-code`: the target's state. They
// start at 20, apart from the error codes (a status that fails exits with
// its error's code), and none is 0: a script that forgot --exit-code (and
// gets 0) cannot read it as a state.
const (
	StatusThawed      = 20
	StatusHeld        = 21
	StatusLeftover    = 22
	StatusFrozenOther = 23
	StatusFreezing    = 24
)

// StatusCodes lists the status codes, in order.
var StatusCodes = []ExitCode{
	{StatusThawed, "thawed", "thawed: the target runs"},
	{StatusHeld, "held", "frozen by cgfreeze, and a live cgfreeze holds it"},
	{StatusLeftover, "leftover", "frozen by a cgfreeze that is gone: cgfreeze thaw undoes it"},
	{StatusFrozenOther, "frozen_other", "frozen by another tool (runc pause, docker pause, the runtime)"},
	{StatusFreezing, "freezing", "freezing: the kernel has not finished, or a tool is half-way"},
}

// StatusCode returns the status code of a status event's state, frozen_by
// and held.
func StatusCode(state, frozenBy string, held bool) int {
	switch {
	case state == "thawed":
		return StatusThawed
	case state == "freezing":
		return StatusFreezing
	case frozenBy == "cgfreeze" && held:
		return StatusHeld
	case frozenBy == "cgfreeze":
		return StatusLeftover
	default:
		return StatusFrozenOther
	}
}
