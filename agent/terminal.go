package agent

import (
	"bufio"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IsTerminal tells whether f is a terminal: the terminal view of a hold
// is painted only there, so that a pipe or a file gets the events alone.
func IsTerminal(f *os.File) bool {
	return f != nil && isatty.IsTerminal(f.Fd())
}

// watchEnter calls enter for every line read from in (Enter on a
// terminal), until in ends.
func watchEnter(in io.Reader, enter func()) {
	r := bufio.NewReader(in)
	for {
		if _, err := r.ReadBytes('\n'); err != nil {
			return
		}
		enter()
	}
}
