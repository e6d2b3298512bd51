//go:build !linux

package freezer

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/procs"
)

// Off Linux there is no cgroup freezer: the package builds, with the same
// API, so that a program that imports it builds on any OS (and can, say,
// decode cgfreeze's events or tell a user what to do), and every call that
// would reach a cgroup fails with an error that wraps ErrNotLinux. The
// Linux files document each identifier; TestStubMatchesLinux keeps the
// types of this file the same as theirs.

// ErrNotLinux: the cgroup freezer exists on Linux only.
var ErrNotLinux = errors.New("the cgroup freezer works on Linux only")

var (
	ErrTargetGone    = errors.New("target gone")
	ErrThawedByOther = errors.New("target thawed by another")
	ErrNotAdoptable  = errors.New("the freeze cannot be taken over")
)

// ChildPrefix starts the name of the child cgroup a subtree freeze makes.
const ChildPrefix = "cgfreeze-"

// Strategy is how a target is frozen.
type Strategy string

// The strategies.
const (
	StrategyFreezer Strategy = "freezer"
	StrategyDirect  Strategy = "direct"
	StrategySubtree Strategy = "subtree"
)

// Options says which process's cgroup to freeze and where to look.
type Options struct {
	PID          int
	PIDDefaulted bool
	ContainerID  string
	ProcRoot     string
	SysCgroup    string
	Version      int
	Recovering   bool
	CgroupMount  string
}

// Target is a resolved target (never, off Linux).
type Target struct {
	PID              int
	ContainerID      string
	Version          int
	Path             string
	Strategy         Strategy
	EnteredNamespace bool
}

// Frozen is a confirmed freeze (never, off Linux).
type Frozen struct {
	Target    *Target
	Processes int
	Recovered Recovery
}

// Recovery tells what Recover found.
type Recovery struct {
	Recovered bool
	Holder    int
	Strategy  Strategy
}

// Status is what Inspect reports about a target.
type Status struct {
	State     string
	FrozenBy  string
	Holder    int
	Held      bool
	Processes int
}

// HoldReport is one thing Hold saw and did while it held the target.
type HoldReport struct {
	Kind      string
	What      string
	Cgroup    string
	Processes int
	Latency   time.Duration
	Err       error
}

func notLinux(what string) error {
	return errors.Join(ErrNotLinux, errors.New(what+": cgroups exist on Linux only; run cgfreeze on the Linux node or in a container there"))
}

// Resolve fails off Linux.
func Resolve(opts Options) (*Target, error) { return nil, notLinux("resolve the target") }

// Close does nothing off Linux.
func (t *Target) Close() error { return nil }

// Processes fails off Linux.
func (t *Target) Processes() (pids []int, hidden int, err error) {
	return nil, 0, notLinux("list the target's processes")
}

// Freeze fails off Linux.
func Freeze(ctx context.Context, t *Target) (*Frozen, error) { return nil, notLinux("freeze") }

// Thaw fails off Linux.
func (f *Frozen) Thaw(ctx context.Context) error { return notLinux("thaw") }

// Abandon does nothing off Linux.
func (f *Frozen) Abandon() {}

// PrepareThaw does nothing off Linux.
func (f *Frozen) PrepareThaw() {}

// Primer does nothing off Linux.
type Primer struct{}

// OpenPrimer returns nil off Linux.
func OpenPrimer(t *Target) *Primer { return nil }

// Prime does nothing off Linux.
func (p *Primer) Prime() {}

// Close does nothing off Linux.
func (p *Primer) Close() error { return nil }

// Count fails off Linux.
func (f *Frozen) Count() (int, error) { return 0, notLinux("count") }

// HandOver fails off Linux.
func (f *Frozen) HandOver(holder int, send func(lock *os.File) error) error {
	return notLinux("hand over")
}

// Share fails off Linux.
func (t *Target) Share() (Handle, []*os.File, error) {
	return Handle{}, nil, notLinux("share the target")
}

// Open fails off Linux.
func Open(h Handle, procRoot string, files []*os.File) (*Target, error) {
	return nil, notLinux("open a shared target")
}

// Adopt fails off Linux.
func Adopt(t *Target, lock *os.File, processes int) (*Frozen, error) {
	return nil, notLinux("adopt a freeze")
}

// Hold fails off Linux.
func (f *Frozen) Hold(ctx context.Context, report func(HoldReport)) error { return notLinux("hold") }

// Inspect fails off Linux.
func Inspect(t *Target) (Status, error) { return Status{}, notLinux("inspect the target") }

// Recover fails off Linux.
func Recover(ctx context.Context, t *Target) (Recovery, error) {
	return Recovery{}, notLinux("recover")
}

// RecoverReleased fails off Linux.
func RecoverReleased(ctx context.Context, t *Target, wait time.Duration) (Recovery, error) {
	return Recovery{}, notLinux("recover")
}

// DetectVersion fails off Linux.
func DetectVersion(sysCgroup string, cg procs.Cgroups) (int, error) {
	return 0, notLinux("detect the cgroup version")
}

// IsChildName tells whether name has the shape of a subtree freeze's
// child: ChildPrefix and 16 hex digits, or the name before it, "cgfreeze".
func IsChildName(name string) bool {
	if name == "cgfreeze" {
		return true
	}
	r, ok := strings.CutPrefix(name, ChildPrefix)
	if !ok || len(r) != 16 {
		return false
	}
	_, err := hex.DecodeString(r)
	return err == nil
}
