//go:build linux

package freezer_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/cgfreeze/cgfreeze/freezer"
)

// A refusal changes nothing and says what failed; errors.Is tells the
// kinds apart. (This one runs: it needs no privilege.)
func ExampleResolve_notFound() {
	emptyProc, err := os.MkdirTemp("", "proc")
	if err != nil {
		panic(err)
	}
	defer func() { _ = os.RemoveAll(emptyProc) }()
	_, err = freezer.Resolve(freezer.Options{PID: 4242, ProcRoot: emptyProc})
	fmt.Println(errors.Is(err, freezer.ErrTargetNotFound))
	// Output: true
}
