package freezer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cgfreeze/cgfreeze/freezer"
)

// These examples compile on every OS (go vet builds them), but, having no
// "Output:" comment, go test does not run them: a freeze needs root and a
// cgroup of one's own, which the unit tests (run as nobody) do not have.
// integration/ runs the same calls on real cgroups. ExampleResolve_notFound
// (example_linux_test.go) runs.

// freezeHoldThaw freezes the cgroup of pid, holds it until ctx ends (or
// the target does), and thaws it within a deadline, whatever happened.
func freezeHoldThaw(ctx context.Context, pid int) (err error) {
	t, err := freezer.Resolve(freezer.Options{PID: pid})
	if err != nil {
		return err // nothing changed
	}
	defer func() { err = errors.Join(err, t.Close()) }()

	freezeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	frozen, err := freezer.Freeze(freezeCtx, t)
	cancel()
	if err != nil {
		return err // rolled back: the target runs (unless errors.Is(err, freezer.ErrThawFailed))
	}
	// Frozen: nothing of the target runs. Counting is left for after.
	n, err := frozen.Count()
	if err != nil {
		log.Printf("count: %v", err)
	}
	fmt.Printf("froze %d processes of %s (%s)\n", n, t.Path, t.Strategy)
	herr := frozen.Hold(ctx, func(r freezer.HoldReport) {
		log.Printf("%s: %s in %s", r.Kind, r.What, r.Cgroup)
	})

	// Thaw whatever ended the hold: a thaw of a target that went away is a
	// no-op. It retries until its deadline, then says what is left.
	thawCtx, cancelThaw := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelThaw()
	if err := frozen.Thaw(thawCtx); err != nil {
		// The target may still be frozen: release the lock so that
		// `cgfreeze thaw` (or freezer.Recover) can undo it.
		frozen.Abandon()
		return fmt.Errorf("%w: run `cgfreeze thaw --pid %d`", err, pid)
	}
	switch {
	case errors.Is(herr, freezer.ErrTargetGone):
		fmt.Println("the target went away during the hold")
	case errors.Is(herr, freezer.ErrThawedByOther):
		fmt.Println("its owner thawed it")
	default:
		fmt.Println("thawed")
	}
	return nil
}

// A freeze, a hold of at most 30 seconds that Ctrl-C or SIGTERM ends
// sooner, and a thaw within a deadline. The caller is the watchdog: if it
// dies while the target is frozen, the target stays frozen until
// `cgfreeze thaw` (or freezer.Recover) undoes it (see the package doc,
// "Crash safety").
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := freezeHoldThaw(ctx, 4242); err != nil {
		fmt.Println(err)
	}
}

// Freeze with a deadline: a freeze that does not complete in time is
// rolled back before Freeze returns; a target someone else froze is left
// alone.
func ExampleFreeze() {
	t, err := freezer.Resolve(freezer.Options{ContainerID: "containerd://8aa7568f79cd"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = t.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	frozen, err := freezer.Freeze(ctx, t)
	switch {
	case errors.Is(err, freezer.ErrAlreadyFrozen):
		fmt.Println("frozen by someone else, or held by a running cgfreeze: left alone")
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	time.Sleep(time.Second) // the work done while the target is frozen
	thaw, cancelThaw := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelThaw()
	if err := frozen.Thaw(thaw); err != nil {
		frozen.Abandon()
		fmt.Println(err)
	}
}

// Inspect reads the state, as `cgfreeze status` does.
func ExampleInspect() {
	t, err := freezer.Resolve(freezer.Options{PID: 4242, Recovering: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = t.Close() }()
	st, err := freezer.Inspect(t)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.State, st.FrozenBy, st.Held)
}
