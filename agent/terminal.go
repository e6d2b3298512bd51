package agent

import (
	"bufio"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"
)

// IsTerminal tells whether f is a terminal: the terminal view of a hold
// is painted only there, so that a pipe or a file gets the events alone.
func IsTerminal(f *os.File) bool {
	return f != nil && isatty.IsTerminal(f.Fd())
}

// TerminalWidth returns the width of the terminal f in columns, 0 when
// unknown.
func TerminalWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
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
