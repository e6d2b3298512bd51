//go:build linux

package agent

import (
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestWaitPrimesAndReleases: the supervisor's wait passes a signal on to a
// ready holder and primes (freezer.Primer writes once, whatever the calls), and
// releases what it holds for a recovery once the holder said "done", before
// the holder has ended; a holder that ends without "done" releases
// nothing.
func TestWaitPrimesAndReleases(t *testing.T) {
	for _, done := range []bool{true, false} {
		name := "without done"
		if done {
			name = "done"
		}
		t.Run(name, func(t *testing.T) {
			own, other := pair(t)
			// The holder: a process that a signal ends.
			pid, err := forkExec("/bin/sleep", []string{"sleep", "30"}, []*os.File{nil, nil, nil})
			if err != nil {
				t.Fatal(err)
			}
			h := &HolderProcess{proc: newProcess(pid), ch: own}
			defer func() {
				h.proc.signal(os.Kill)
				<-h.proc.wait()
			}()
			var primed, released atomic.Int32
			h.prime = func() { primed.Add(1) }
			exitedAtRelease := make(chan bool, 1)
			h.release = func() {
				released.Add(1)
				select {
				case <-h.proc.wait():
					exitedAtRelease <- true
				default:
					exitedAtRelease <- false
				}
			}
			sigs := make(chan os.Signal, 4)
			if err := other.Send(Message{Kind: MsgReady}); err != nil {
				t.Fatal(err)
			}
			if done {
				if err := other.Send(Message{Kind: MsgDone, Arg: "0"}); err != nil {
					t.Fatal(err)
				}
			}
			ended := make(chan HolderEnd, 1)
			go func() { ended <- h.Wait(sigs) }()
			if done {
				select {
				case at := <-exitedAtRelease:
					if at {
						t.Error("released only after the holder had ended")
					}
				case <-time.After(5 * time.Second):
					t.Fatal("nothing released after done")
				}
			}
			// Ready comes before the signals are taken: the wait reads
			// the channel on its own goroutine.
			time.Sleep(50 * time.Millisecond)
			sigs <- syscall.SIGTERM
			sigs <- syscall.SIGINT
			_ = other.Close()
			var end HolderEnd
			select {
			case end = <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not return after the holder was signalled")
			}
			if end.Signal != syscall.SIGTERM {
				t.Errorf("the holder ended by %v, want SIGTERM (passed on)", end.Signal)
			}
			if primed.Load() < 1 {
				t.Error("Wait did not prime after the signal")
			}
			if end.Done != done {
				t.Errorf("Done = %v, want %v", end.Done, done)
			}
			if want := map[bool]int32{true: 1, false: 0}[done]; released.Load() != want {
				t.Errorf("released %d times, want %d", released.Load(), want)
			}
		})
	}
}
