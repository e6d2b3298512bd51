package agent

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cgfreeze/cgfreeze/contract"
)

// A lease ties a hold to its caller: the hold ends, and the target is
// thawed, when the caller goes away.
const (
	// LeaseStdin ends the hold when stdin reaches EOF: the calling tool
	// closed its end of the pipe, or died. The holder watches it.
	LeaseStdin = contract.ReasonStdin
	// LeaseParent ends the hold when the supervisor's parent process
	// exits. The supervisor watches it (the holder's parent is the
	// supervisor) and says "end parent" on the channel.
	LeaseParent = contract.ReasonParent
)

// ParseLeases checks the values of --lease: names, or lists of names.
func ParseLeases(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, l := range strings.Split(v, ",") {
			switch l = strings.TrimSpace(l); l {
			case LeaseStdin, LeaseParent:
				out = append(out, l)
			default:
				return nil, fmt.Errorf("lease must be stdin or parent, not %q", l)
			}
		}
	}
	return out, nil
}

// watchStdin sends LeaseStdin on ended when stdin reaches EOF (or fails).
// Input is read and ignored.
//
// enter, when not nil, is called for every line read (Enter on a
// terminal: the terminal view is painted again).
func watchStdin(stdin io.Reader, ended chan<- string, enter func()) {
	if enter != nil {
		watchEnter(stdin, enter)
	} else {
		_, _ = io.Copy(io.Discard, stdin)
	}
	ended <- LeaseStdin
}

// ErrParentInvisible: --lease parent, and the parent is outside this PID
// namespace (the first process of an ephemeral container) or gone.
var ErrParentInvisible = errors.New("the parent process is not visible")
