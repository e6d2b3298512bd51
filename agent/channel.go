package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// The supervisor and its holder talk over one channel: a Unix stream
// socket pair, the holder's end inherited as descriptor ChannelFD (no
// descriptor number is passed as a flag). Both directions use the same
// framing: one message a line, "kind" or "kind arg", the argument written
// as is when it is a plain token and Go-quoted otherwise (a cgroup path
// with a space). The JSON arguments (Intent, Handover) are written and
// read by hand, as encoding/json would (handover.go), since they lie on
// the way to the freeze. Messages:
//
//	supervisor -> holder: "go <path>"  the supervisor resolved the target at path: go on
//	                                   (the slow path: the holder freezes)
//	                      "freeze <intent>" the supervisor resolved the target and freezes
//	                                   it itself now (the fast path): the holder is the
//	                                   guard until the hand-over (Intent, JSON)
//	                      "hold <handover>" the target is frozen and the "frozen" event out:
//	                                   the holder takes the hold over (Handover, JSON),
//	                                   with the holder's lock passed beside it (SCM_RIGHTS)
//	                      "abort"      the supervisor gave up, and undid what it had done
//	                      "end <lease>" a lease the supervisor watches ended (parent)
//	holder -> supervisor: "ready"      the holder runs and catches signals: the
//	                                   supervisor forwards them from now on
//	                      "done <code>" the target is known to be thawed; the holder
//	                                    ends with code
//
// The far end closing (EOF) is the other process's death, whatever killed
// it, with no race: the kernel closes a dead process's descriptors, and
// only the two processes hold the ends (every other copy is close-on-exec).
const ChannelFD = 3

// Message kinds.
const (
	MsgGo     = "go"
	MsgFreeze = "freeze"
	MsgHold   = "hold"
	MsgAbort  = "abort"
	MsgEnd    = "end"
	MsgReady  = "ready"
	MsgDone   = "done"
)

// maxMessage bounds a message line: a cgroup path is at most a few KiB.
const maxMessage = 64 << 10

// Message is one message on the channel.
type Message struct {
	Kind string
	Arg  string
}

func (m Message) String() string { return strings.TrimSuffix(string(m.encode()), "\n") }

// encode returns m as one line.
func (m Message) encode() []byte {
	s := m.Kind
	if m.Arg != "" {
		a := m.Arg
		if needsQuote(a) {
			a = strconv.Quote(a)
		}
		s += " " + a
	}
	return []byte(s + "\n")
}

// needsQuote tells whether an argument must be quoted to be read back as
// written: when it is empty or holds anything but printable non-space
// ASCII, or starts with a quote.
func needsQuote(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '"' {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return true
		}
	}
	return false
}

// ErrMalformed: a message that does not follow the framing. The channel
// stays usable: the next line is the next message.
var ErrMalformed = errors.New("malformed message")

// parseMessage reads one line (without its newline) back.
func parseMessage(line string) (Message, error) {
	kind, arg, _ := strings.Cut(line, " ")
	if kind == "" {
		return Message{}, fmt.Errorf("%w %q: no kind", ErrMalformed, line)
	}
	if strings.HasPrefix(arg, `"`) {
		a, err := strconv.Unquote(arg)
		if err != nil {
			return Message{}, fmt.Errorf("%w %q: %w", ErrMalformed, line, err)
		}
		arg = a
	} else if needsQuote(arg) {
		return Message{}, fmt.Errorf("%w %q: the argument must be quoted", ErrMalformed, line)
	}
	return Message{Kind: kind, Arg: arg}, nil
}

// Channel is one end of the supervisor-holder channel. Send may be called
// from any goroutine; Receive from one at a time.
type Channel struct {
	f   *os.File
	r   *bufio.Reader
	wmu sync.Mutex
	// files are the descriptors received beside the messages read so
	// far (SCM_RIGHTS), oldest first, until TakeFile takes them.
	fmu   sync.Mutex
	files []*os.File
}

// NewChannel wraps one end of the channel.
func NewChannel(f *os.File) *Channel {
	c := &Channel{f: f}
	c.r = bufio.NewReaderSize(channelReader{c}, 4096)
	return c
}

// channelReader reads the channel's bytes and keeps the descriptors that
// come with them (readWithFiles).
type channelReader struct{ c *Channel }

func (r channelReader) Read(p []byte) (int, error) {
	n, files, err := readWithFiles(r.c.f, p)
	if len(files) > 0 {
		r.c.fmu.Lock()
		r.c.files = append(r.c.files, files...)
		r.c.fmu.Unlock()
	}
	return n, err
}

// maxPassed bounds the descriptors passed with one message.
const maxPassed = 4

// SendFile writes one message with files passed beside it (SCM_RIGHTS):
// the far end takes them with TakeFile, in order, once it has read the
// message. The files stay open here; the far end gets descriptors of its
// own of the same open files (and of any flock(2) on them).
func (c *Channel) SendFile(m Message, files ...*os.File) error {
	if len(files) == 0 || len(files) > maxPassed {
		return fmt.Errorf("send %q: %d descriptors, want 1 to %d", m.String(), len(files), maxPassed)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := writeWithFiles(c.f, m.encode(), files); err != nil {
		return fmt.Errorf("send %q with descriptors: %w", m.String(), err)
	}
	return nil
}

// TakeFile returns the oldest descriptor received beside the messages read
// so far, or nil; the caller owns it.
func (c *Channel) TakeFile() *os.File {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if len(c.files) == 0 {
		return nil
	}
	f := c.files[0]
	c.files = c.files[1:]
	return f
}

// ErrNoChannel: the process has no inherited channel at ChannelFD.
var ErrNoChannel = errors.New("no supervisor channel")

// Send writes one message.
func (c *Channel) Send(m Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.f.Write(m.encode()); err != nil {
		return fmt.Errorf("send %q: %w", m.String(), err)
	}
	return nil
}

// Receive reads the next message. An error wrapping ErrMalformed is one bad
// line; any other error (io.EOF, or ECONNRESET when the far end died with
// unread data) means the far end is closed: its process ended.
func (c *Channel) Receive() (Message, error) {
	var line []byte
	for {
		part, err := c.r.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxMessage {
			// The rest of the line is not read: the channel cannot be
			// trusted to be in step any more.
			return Message{}, fmt.Errorf("a message longer than %d bytes", maxMessage)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return Message{}, fmt.Errorf("the channel closed in the middle of a message %q: %w", line, io.ErrUnexpectedEOF)
		}
		return Message{}, err
	}
	return parseMessage(string(line[:len(line)-1]))
}

// Close closes this end (the far end reads EOF) and the descriptors
// received and not taken.
func (c *Channel) Close() error {
	for f := c.TakeFile(); f != nil; f = c.TakeFile() {
		_ = f.Close()
	}
	return c.f.Close()
}
