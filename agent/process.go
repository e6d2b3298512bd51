package agent

import (
	"os"
	"sync"
)

// process is a started holder process. It replaces os/exec on the
// supervisor's path from exec to the freeze: os/exec's first start in a
// process checks, once, that pidfds work, which forks and reaps a test
// child before the real one (about 0.35 ms in a fresh process); a plain
// fork and exec (forkExec) does not.
type process struct {
	pid int
	// mu is held while the process is reaped, so that no signal goes to
	// its PID once reaped (the PID may be someone else's by then).
	mu     sync.Mutex
	reaped bool
	// sig killed the process, or nil; code is its exit code otherwise
	// (-1 when unknown).
	sig    os.Signal
	code   int
	once   sync.Once
	exited chan struct{}
}

func newProcess(pid int) *process {
	return &process{pid: pid, code: -1, exited: make(chan struct{})}
}

// wait returns a channel that is closed once the process has ended and
// was reaped: then sig and code say how it ended. The first call starts
// the wait.
func (p *process) wait() <-chan struct{} {
	p.once.Do(func() {
		go func() {
			// The process is reaped under the lock only once it can
			// be (awaitExit): a signal meanwhile still reaches it.
			awaitExit(p.pid)
			p.mu.Lock()
			p.sig, p.code = reap(p.pid)
			p.reaped = true
			p.mu.Unlock()
			close(p.exited)
		}()
	})
	return p.exited
}

// signal sends s to the process unless it was reaped already.
func (p *process) signal(s os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		_ = kill(p.pid, s)
	}
}
