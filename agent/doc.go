// Package agent runs a freeze as cgfreeze does: two processes that guard
// each other, a supervisor (the first process, the watchdog) and its
// holder (which freezes, holds and thaws), talking over one channel with
// one framing in both directions (channel.go); the leases that tie a hold
// to its caller; and the event writer, which never lets stdout block the
// hold (events.go).
//
// A program that embeds cgfreeze's process model runs, in its first
// process, StartHolder, then Proceed once it resolved the target, then
// Supervise; and, in the holder (its own binary started with a command of
// its choice), OpenLink, AwaitGo and Hold. docs/design.md, "Crash safety",
// says what each side guarantees when the other dies.
//
// Errors say what failed; what to do about it is the command's to add.
package agent
