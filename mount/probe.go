//go:build linux

package mount

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// Probe is a cgroup file kept open for cheap, frequent re-reads (a hold's
// look at freezer.state or cgroup.procs): one pread(2) at offset 0, from
// any goroutine, with no open, close or allocation. kernfs restarts the
// file's contents at offset 0, so each read is current.
type Probe struct {
	f *os.File
	p string
	// fake is the fake Root the file is below, which rewrites its files
	// by renaming: an open one goes stale, so a fake's probe reads anew.
	fake *Root
}

// OpenProbe opens the file p below r for re-reads. Close it.
func (r *Root) OpenProbe(p string) (*Probe, error) {
	f, err := r.Open(p, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	pr := &Probe{f: f, p: p}
	if r.fake != nil {
		pr.fake = r
	}
	return pr, nil
}

// OpenFileProbe opens the file at p, outside any Root (such as
// /proc/<PID>/cgroup), for re-reads. Close it.
func OpenFileProbe(p string) (*Probe, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return &Probe{f: f, p: p}, nil
}

// Read reads the start of the file into buf and returns it without
// surrounding white space; a file longer than buf is cut at len(buf).
func (pr *Probe) Read(buf []byte) ([]byte, error) {
	if pr.fake != nil {
		v, err := pr.fake.ReadFile(pr.p)
		return buf[:copy(buf, v)], err
	}
	n, err := rawPreadStart(int(pr.f.Fd()), buf) // rawsys_linux.go: why
	if err != nil {
		return nil, &os.PathError{Op: "pread", Path: pr.p, Err: err}
	}
	return bytes.TrimSpace(buf[:n]), nil
}

// Close closes the file.
func (pr *Probe) Close() error { return pr.f.Close() }
