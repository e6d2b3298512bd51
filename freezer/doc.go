// Package freezer freezes and thaws the processes of one cgroup, the way
// cgfreeze does for a container: on cgroup v1 through freezer.state, on
// cgroup v2 through the target's own cgroup.freeze ("direct") or, where the
// target is the root of a delegated cgroup namespace and its cgroup.freeze
// may not be written, through a child cgroup named "cgfreeze-<random>" that
// the target's processes are moved into ("subtree").
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
//
// # Crash safety: a library user has no watchdog
//
// The freeze lives in the kernel, not in the caller: a process that dies
// (SIGKILL, the OOM killer, a panic) while it holds a target leaves it
// frozen, and its processes stay frozen until someone thaws them. The
// cgfreeze command guards against that with a second process (package
// agent: the supervisor starts a holder that freezes, and thaws the target
// itself, with RecoverReleased, if the holder dies); this package alone
// does not. A library user must do one of:
//
//   - run the freeze in a child process and watch it, as cgfreeze does:
//     agent.StartHolder and agent.Supervise (or run the cgfreeze binary
//     itself, which prints its events as JSON with -o json; the contract
//     package has their types);
//   - on its own next start (or from an init container, a systemd
//     ExecStopPost=, a Kubernetes preStop), call Recover on the target, or
//     run `cgfreeze thaw` with the same flags: both undo a freeze whose
//     holder died and leave a live one alone;
//   - keep the freeze short, with a deadline, and Thaw in a deferred call
//     and on SIGTERM (the Examples do): this covers a return and a signal,
//     not SIGKILL.
//
// A caller that thaws in a deferred call must not exit through os.Exit or
// log.Fatal while the target is frozen: neither runs deferred calls.
//
// Resolve locks an OS thread for the target's mount, and Close ends it. A
// program that starts children with SysProcAttr.Pdeathsig from such a
// thread sees them signalled when the thread ends (Go's Pdeathsig follows
// the thread, not the process).
//
// Off Linux the package builds with the same API, and every call fails
// with an error that wraps ErrNotLinux.
package freezer
