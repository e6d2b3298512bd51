// Package freezer freezes and thaws the processes of one cgroup, the way
// cgfreeze does for a container: on cgroup v1 through freezer.state, on
// cgroup v2 through the target's own cgroup.freeze ("direct") or, where the
// target is the root of a delegated cgroup namespace and its cgroup.freeze
// may not be written, through a child cgroup named "cgfreeze" that the
// target's processes are moved into ("subtree").
//
// Use:
//
//	target, err := freezer.Resolve(freezer.Options{PID: pid})
//	defer target.Close()
//	frozen, err := freezer.Freeze(ctx, target) // confirmed, or rolled back
//	...
//	err = frozen.Thaw(ctx)                     // confirmed; every PID back
//
// Options.ContainerID selects the target by container ID instead of PID, and
// Options.PIDDefaulted makes Resolve refuse a default PID 1 that is not the
// only workload in sight (a pod's pause container, with a shared PID
// namespace).
//
// Every wait is bounded by the context's deadline (Freeze and Thaw refuse a
// context without one). A Freeze that fails or times out is rolled back
// before it returns. Refusals (a missing process, a target that holds the
// caller, the root cgroup, a target frozen by someone else, ...) change
// nothing. Errors wrap one of the Err values of this package so that callers
// can tell them apart with errors.Is.
//
// cgfreeze marks what it freezes with an extended attribute (trusted.cgfreeze)
// on the cgroup it wrote, so that Recover, run from a fresh process or
// container, can find and undo a freeze whose holder died.
package freezer
