//go:build linux

package mount

import (
	"testing"
)

// A Do on a mount with a thread of its own that comes after Close (a
// goroutine of the caller's still about, such as freezer's PrepareThaw)
// fails: it used to send on the closed channel of calls and panic.
func TestThreadDoAfterClose(t *testing.T) {
	fs := &FS{spec: Spec{Version: 2}, calls: make(chan call), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go fs.serve(Options{Fake: NewFake(t.TempDir())}, ready)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	ran := false
	if err := fs.Do(func(*Root) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("Do before Close = %v (ran %v)", err, ran)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Close(); err != nil {
		t.Fatalf("a second Close = %v", err)
	}
	if err := fs.Do(func(*Root) error { t.Error("fn ran after Close"); return nil }); err == nil {
		t.Error("Do after Close succeeded")
	}
}
