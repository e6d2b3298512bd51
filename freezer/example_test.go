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

// A freeze, a hold of at most 30 seconds that Ctrl-C or SIGTERM ends
// sooner, and a thaw within a deadline. The caller is the watchdog: if it
// dies while the target is frozen, the target stays frozen until
// `cgfreeze thaw` (or freezer.Recover) undoes it (see the package doc,
// "Crash safety").
func Example() {
	t, err := freezer.Resolve(freezer.Options{PID: 4242})
	if err != nil {
		log.Fatal(err) // nothing changed
	}
	defer t.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	frozen, err := freezer.Freeze(ctx, t)
	cancel()
	if err != nil {
		log.Fatal(err) // rolled back: the target runs (unless errors.Is(err, freezer.ErrThawFailed))
	}
	fmt.Printf("froze %d processes of %s (%s)\n", frozen.Processes, t.Path, t.Strategy)

	held, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	held, cancelHold := context.WithTimeout(held, 30*time.Second)
	defer cancelHold()
	herr := frozen.Hold(held, func(r freezer.HoldReport) {
		log.Printf("%s: %s in %s", r.Kind, r.What, r.Cgroup)
	})

	// Thaw whatever ended the hold: a thaw of a target that went away is a
	// no-op.
	thawCtx, cancelThaw := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelThaw()
	if err := frozen.Thaw(thawCtx); err != nil {
		log.Fatalf("%v: run `cgfreeze thaw --pid 4242`", err)
	}
	switch {
	case errors.Is(herr, freezer.ErrTargetGone):
		fmt.Println("the target went away during the hold")
	case errors.Is(herr, freezer.ErrThawedByOther):
		fmt.Println("its owner thawed it")
	default:
		fmt.Println("thawed")
	}
}

// Freeze with a deadline: a freeze that does not complete in time is
// rolled back before Freeze returns.
func ExampleFreeze() {
	t, err := freezer.Resolve(freezer.Options{ContainerID: "containerd://8aa7568f79cd"})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	frozen, err := freezer.Freeze(ctx, t)
	if errors.Is(err, freezer.ErrAlreadyFrozen) {
		log.Fatal("frozen by someone else, or held by a running cgfreeze: left alone")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		thaw, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := frozen.Thaw(thaw); err != nil {
			log.Print(err)
		}
	}()
	time.Sleep(time.Second) // the work done while the target is frozen
}

// Thaw with a deadline: it retries until then, and says what is left.
func ExampleFrozen_Thaw() {
	var frozen *freezer.Frozen // from freezer.Freeze
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := frozen.Thaw(ctx); errors.Is(err, freezer.ErrThawFailed) {
		// The target may still be frozen: hand it over rather than exit
		// with it frozen (Abandon releases the lock for Recover).
		frozen.Abandon()
		log.Fatalf("%v: run `cgfreeze thaw`", err)
	}
}

// Inspect reads the state, as `cgfreeze status` does.
func ExampleInspect() {
	t, err := freezer.Resolve(freezer.Options{PID: 4242, Recovering: true})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	st, err := freezer.Inspect(t)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, st.FrozenBy, st.Held)
}
