//go:build !linux

package agent

import (
	"errors"
	"fmt"
	"os"
)

// Off Linux the agent's process protocol cannot run (there is nothing to
// freeze): the package builds, its events, exit codes and terminal view
// work, and what needs Linux fails with ErrNotLinux.

// ErrNotLinux: the supervisor and holder run on Linux only.
var ErrNotLinux = errors.New("the cgfreeze agent works on Linux only")

// yieldCPU does nothing off Linux.
func yieldCPU() {}

// NewChannelPair fails with ErrNotLinux off Linux.
func NewChannelPair() (own, other *os.File, err error) { return nil, nil, ErrNotLinux }

// InheritedChannel fails off Linux.
func InheritedChannel() (*Channel, error) {
	return nil, fmt.Errorf("%w: %w", ErrNoChannel, ErrNotLinux)
}

// readWithFiles reads f; off Linux no descriptor is passed.
func readWithFiles(f *os.File, p []byte) (int, []*os.File, error) {
	n, err := f.Read(p)
	return n, nil, err
}

// writeWithFiles fails off Linux.
func writeWithFiles(f *os.File, b []byte, files []*os.File) error { return ErrNotLinux }

// peerClosed is unknown (false) off Linux.
func peerClosed(f *os.File) bool { return false }

// watchable: off Linux a closed stdout is noticed on the next write.
func watchable(f *os.File) (int, bool) { return 0, false }

func (w *Writer) watchClosed(fd int) {}

// OpenParent fails with ErrNotLinux off Linux (no pidfd).
func OpenParent() (*os.File, error) { return nil, ErrNotLinux }

// waitExit never returns off Linux, where OpenParent gives no pidfd.
func waitExit(pidfd *os.File) { select {} }

// TerminalWidth is unknown (0) off Linux: the status line is not cut.
func TerminalWidth(f *os.File) int { return 0 }
