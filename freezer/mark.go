package freezer

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
)

// markXattr names the extended attribute that cgfreeze sets on the cgroup it
// freezes (v1, direct) or creates (subtree). It lives in the cgroup file
// system, so a fresh cgfreeze in a new container can read it when the one
// that set it is gone.
const markXattr = "trusted.cgfreeze"

// mark records who froze a cgroup and what to undo.
type mark struct {
	Holder   int       `json:"holder"`
	PIDNS    uint64    `json:"pidns"`
	Start    uint64    `json:"start"`
	Strategy Strategy  `json:"strategy"`
	Since    time.Time `json:"since"`
	// Children are the child cgroups (relative to the target) that the
	// subtree strategy froze in place and must thaw.
	Children []string `json:"children,omitempty"`
}

func newMark(procRoot string, s Strategy) mark {
	m := mark{Holder: os.Getpid(), Strategy: s, Since: time.Now().UTC()}
	m.PIDNS, _ = procs.Namespace(procRoot, m.Holder, "pid")
	m.Start, _ = procs.StartTime(procRoot, m.Holder)
	return m
}

func writeMark(root *mount.Root, cgPath string, m mark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return classify(root.SetXattr(cgPath, markXattr, string(b)))
}

// readMark returns the mark on a cgroup, or nil.
func readMark(root *mount.Root, cgPath string) (*mark, error) {
	v, err := root.GetXattr(cgPath, markXattr)
	if err != nil || v == "" {
		return nil, err
	}
	var m mark
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("%s: malformed %s mark %q: %w", cgPath, markXattr, v, err)
	}
	return &m, nil
}

// carriesMark tells whether cgfreeze's mark is on the cgroup at cgPath or
// on one of its children (the child a subtree freeze made): whether a
// cgfreeze froze it, holds it or left it frozen. An unreadable mark is
// none.
func carriesMark(root *mount.Root, cgPath string) bool {
	if v, err := root.GetXattr(cgPath, markXattr); err == nil && v != "" {
		return true
	}
	children, err := root.Children(cgPath)
	if err != nil {
		return false
	}
	for _, c := range children {
		if v, err := root.GetXattr(path.Join(cgPath, c), markXattr); err == nil && v != "" {
			return true
		}
	}
	return false
}
