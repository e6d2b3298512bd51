package agent

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func pair(t *testing.T) (*Channel, *Channel) {
	t.Helper()
	a, b, err := NewChannelPair()
	if err != nil {
		t.Fatal(err)
	}
	ca, cb := NewChannel(a), NewChannel(b)
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	return ca, cb
}

func TestMessageEncoding(t *testing.T) {
	for _, tt := range []struct {
		m    Message
		line string
	}{
		{Message{Kind: MsgGo, Arg: "/kubepods/pod1/ctr"}, "go /kubepods/pod1/ctr\n"},
		{Message{Kind: MsgGo, Arg: "/my pod"}, "go \"/my pod\"\n"},
		{Message{Kind: MsgGo, Arg: "/a\nb"}, "go \"/a\\nb\"\n"},
		{Message{Kind: MsgGo, Arg: `"quoted`}, "go \"\\\"quoted\"\n"},
		{Message{Kind: MsgGo, Arg: "/é"}, "go \"/é\"\n"},
		{Message{Kind: MsgAbort}, "abort\n"},
		{Message{Kind: MsgEnd, Arg: "parent"}, "end parent\n"},
		{Message{Kind: MsgDone, Arg: "0"}, "done 0\n"},
	} {
		if got := string(tt.m.encode()); got != tt.line {
			t.Errorf("encode(%+v) = %q, want %q", tt.m, got, tt.line)
		}
		back, err := parseMessage(strings.TrimSuffix(tt.line, "\n"))
		if err != nil || back != tt.m {
			t.Errorf("parseMessage(%q) = %+v, %v; want %+v", tt.line, back, err, tt.m)
		}
	}
}

func TestMessageMalformed(t *testing.T) {
	for _, line := range []string{"", " go", "go \"unterminated", "go a b"} {
		if _, err := parseMessage(line); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseMessage(%q) = %v, want ErrMalformed", line, err)
		}
	}
}

// TestChannelBothWays: the same framing in both directions, several
// messages in one write read one by one, a bad line skipped, and EOF when
// the far end closes.
func TestChannelBothWays(t *testing.T) {
	sup, hold := pair(t)
	for _, m := range []Message{{Kind: MsgGo, Arg: "/a b"}, {Kind: MsgEnd, Arg: "parent"}} {
		if err := sup.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sup.f.WriteString("go \"bad\n" + "abort\n"); err != nil {
		t.Fatal(err)
	}
	want := []Message{{Kind: MsgGo, Arg: "/a b"}, {Kind: MsgEnd, Arg: "parent"}}
	for _, w := range want {
		m, err := hold.Receive()
		if err != nil || m != w {
			t.Fatalf("Receive() = %+v, %v; want %+v", m, err, w)
		}
	}
	if _, err := hold.Receive(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Receive() of a bad line: %v, want ErrMalformed", err)
	}
	if m, err := hold.Receive(); err != nil || m.Kind != MsgAbort {
		t.Fatalf("Receive() after a bad line = %+v, %v; want abort", m, err)
	}
	if err := hold.Send(Message{Kind: MsgDone, Arg: "15"}); err != nil {
		t.Fatal(err)
	}
	if m, err := sup.Receive(); err != nil || m != (Message{Kind: MsgDone, Arg: "15"}) {
		t.Fatalf("the supervisor's Receive() = %+v, %v", m, err)
	}
	_ = sup.Close()
	if _, err := hold.Receive(); !errors.Is(err, io.EOF) {
		t.Errorf("Receive() after the far end closed: %v, want EOF", err)
	}
}

// TestChannelCutMessage: a far end that dies in the middle of a message
// is an error, not a message.
func TestChannelCutMessage(t *testing.T) {
	sup, hold := pair(t)
	if _, err := sup.f.WriteString("done 1"); err != nil {
		t.Fatal(err)
	}
	_ = sup.Close()
	if m, err := hold.Receive(); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("Receive() of a cut message = %+v, %v; want a closed channel", m, err)
	}
}

// TestChannelTooLong: a line longer than maxMessage is refused without
// reading it all into memory.
func TestChannelTooLong(t *testing.T) {
	sup, hold := pair(t)
	go func() {
		_, _ = sup.f.WriteString("go " + strings.Repeat("a", maxMessage+10) + "\n")
	}()
	if _, err := hold.Receive(); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("Receive() of an over-long line: %v, want an error that ends the channel", err)
	}
}

// TestLinkSupervisorGone: the holder's link sees the supervisor's end
// close as Gone, after the go word, and an "end parent" as a lease end.
func TestLinkSupervisorGone(t *testing.T) {
	sup, hold := pair(t)
	link := NewLink(hold, testLogger(t))
	if err := sup.Send(Message{Kind: MsgGo, Arg: `{"pid":7,"path":"/x"}`}); err != nil {
		t.Fatal(err)
	}
	if w, err := link.AwaitWord(); err != nil || w.Kind != MsgGo || w.Intent.PID != 7 || w.Intent.Path != "/x" {
		t.Fatalf("AwaitWord() = %+v, %v", w, err)
	}
	if err := sup.Send(Message{Kind: MsgEnd, Arg: LeaseParent}); err != nil {
		t.Fatal(err)
	}
	if l := <-link.Ends(); l != LeaseParent {
		t.Errorf("Ends() gave %q, want parent", l)
	}
	_ = sup.Close()
	<-link.Gone()
}

func TestLinkAwaitWord(t *testing.T) {
	sup, hold := pair(t)
	link := NewLink(hold, testLogger(t))
	if err := sup.Send(Message{Kind: MsgAbort}); err != nil {
		t.Fatal(err)
	}
	if _, err := link.AwaitWord(); !errors.Is(err, ErrAborted) {
		t.Errorf("AwaitWord() after abort = %v, want ErrAborted", err)
	}
	sup2, hold2 := pair(t)
	link2 := NewLink(hold2, testLogger(t))
	_ = sup2.Close()
	if _, err := link2.AwaitWord(); !errors.Is(err, ErrSupervisorGone) {
		t.Errorf("AwaitWord() after the supervisor closed = %v, want ErrSupervisorGone", err)
	}
}

// TestGuard: the guard's reading of the holder's end: "done" with its
// code, or none when the holder's end closes first.
func TestGuard(t *testing.T) {
	for _, tt := range []struct {
		name string
		sent string
		done bool
		code int
	}{
		{"done 0", "done 0\n", true, 0},
		{"done 15 after a bad line", "done \"x\n" + "done 15\n", true, 15},
		{"closed without done", "", false, -1},
		{"closed in the middle of done", "done 0", false, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			guard, holder := pair(t)
			if tt.sent != "" {
				if _, err := holder.f.WriteString(tt.sent); err != nil {
					t.Fatal(err)
				}
			}
			_ = holder.Close()
			done, code := Guard(guard)
			if done != tt.done || code != tt.code {
				t.Errorf("Guard() = %v, %d; want %v, %d", done, code, tt.done, tt.code)
			}
		})
	}
}
