//go:build linux

package freezer

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/jsonenc"
	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
	"golang.org/x/sys/unix"
)

// markXattr names the extended attribute that cgfreeze sets on the cgroup it
// freezes (v1, direct), and for subtree on the target (before it creates its
// child: the intent) and on the child it created. It lives in the cgroup
// file system, so a fresh cgfreeze in a new container can read it when the
// one that set it is gone. A trusted.* attribute can be set (and read) only
// with CAP_SYS_ADMIN in the initial user namespace, which a container's
// workload lacks unless it runs privileged: a workload can neither forge a
// mark nor read one. The marks are cgfreeze's proof of ownership: it moves,
// freezes, thaws, removes or recovers only what they name, whatever a
// cgroup is called.
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
	// Child is, in the mark of a subtree freeze on the target, the name of
	// the child cgroup that cgfreeze creates (or created) under it. It is
	// written before the mkdir, since mkdir and setxattr are two system
	// calls and a cgroup cannot be renamed: a holder that dies between them
	// leaves a child that only this intent proves to be cgfreeze's.
	Child string `json:"child,omitempty"`
}

func newMark(procRoot string, s Strategy) mark {
	m := mark{Holder: os.Getpid(), Strategy: s, Since: time.Now().UTC()}
	m.PIDNS, _ = procs.Namespace(procRoot, m.Holder, "pid")
	m.Start, _ = procs.StartTime(procRoot, m.Holder)
	return m
}

func writeMark(root *mount.Root, cgPath string, m mark) error {
	return writeMarkAt(root, nil, cgPath, m)
}

// writeMarkAt is writeMark through dir, the cgroup directory cgPath held
// open (the holder's lock), or through cgPath opened for it when dir is
// nil.
func writeMarkAt(root *mount.Root, dir *os.File, cgPath string, m mark) error {
	b, err := m.appendJSON(make([]byte, 0, 256))
	if err != nil {
		return err
	}
	return classify(root.SetXattrAt(dir, cgPath, markXattr, string(b)))
}

// appendJSON appends m as json.Marshal writes it, by hand: the mark is
// written before the freeze's write, where json.Marshal's first use of
// the type (its encoder built by reflection) would cost a fresh process
// about 0.1 ms. A time that is not in UTC or not in the years 0-9999 (never
// one newMark makes) goes through json.Marshal, for its exact bytes or
// error.
func (m mark) appendJSON(b []byte) ([]byte, error) {
	if m.Since.Location() != time.UTC || m.Since.Year() < 0 || m.Since.Year() > 9999 {
		j, err := json.Marshal(m)
		return append(b, j...), err
	}
	b = append(b, `{"holder":`...)
	b = strconv.AppendInt(b, int64(m.Holder), 10)
	b = append(b, `,"pidns":`...)
	b = strconv.AppendUint(b, m.PIDNS, 10)
	b = append(b, `,"start":`...)
	b = strconv.AppendUint(b, m.Start, 10)
	b = append(b, `,"strategy":`...)
	b = jsonenc.AppendString(b, string(m.Strategy))
	b = append(b, `,"since":"`...)
	b = m.Since.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(m.Children) > 0 {
		b = append(b, `,"children":`...)
		b = jsonenc.AppendStrings(b, m.Children)
	}
	if m.Child != "" {
		b = append(b, `,"child":`...)
		b = jsonenc.AppendString(b, m.Child)
	}
	return append(b, '}'), nil
}

// readMark returns the mark on a cgroup, or nil.
func readMark(root *mount.Root, cgPath string) (*mark, error) {
	return readMarkAt(root, nil, cgPath)
}

// readMarkAt is readMark through dir, as writeMarkAt.
func readMarkAt(root *mount.Root, dir *os.File, cgPath string) (*mark, error) {
	v, err := root.GetXattrAt(dir, cgPath, markXattr)
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
	o, err := owned(root, cgPath, true)
	return err == nil && o.any()
}

// ChildPrefix begins the name of the child cgroup that the subtree strategy
// creates under the target: "cgfreeze-" and 16 random hex digits (64 bits
// from crypto/rand), new for every freeze, so that a workload cannot make
// the cgroup cgfreeze is about to create (its mkdir would then fail) nor
// pass one of its own for cgfreeze's. The name tells a person what the
// cgroup is; only the marks say whose it is.
const ChildPrefix = "cgfreeze-"

// childRandomLen is the number of hex digits after ChildPrefix.
const childRandomLen = 16

// legacyChildName is the fixed name that cgfreeze before issue 9 gave its
// child. Such a child is cgfreeze's only if it carries cgfreeze's mark (an
// older cgfreeze that died holding it); one without a mark cannot be told
// from a workload's cgroup of that name and is left alone.
const legacyChildName = "cgfreeze"

// newChildName returns a fresh name for the subtree strategy's child (a
// variable for the tests that must know it beforehand).
var newChildName = randomChildName

func randomChildName() (string, error) {
	// getrandom(2) itself, as crypto/rand would call it: importing
	// crypto/rand costs every start of cgfreeze about 0.08 ms of package
	// init (its FIPS self-tests' tables), for 8 bytes a subtree freeze
	// needs.
	b := make([]byte, childRandomLen/2)
	for got := 0; got < len(b); {
		n, err := unix.Getrandom(b[got:], 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("random name for the child cgroup: getrandom: %w", err)
		}
		got += n
	}
	return ChildPrefix + hex.EncodeToString(b), nil
}

// IsChildName tells whether a cgroup's name has the shape of the child a
// subtree freeze creates (or created, before issue 9: "cgfreeze"). It is
// for picking the process to resolve a target from and for messages; it
// proves nothing: whether such a cgroup is cgfreeze's is for its marks to
// say.
func IsChildName(name string) bool {
	if name == legacyChildName {
		return true
	}
	r, ok := strings.CutPrefix(name, ChildPrefix)
	if !ok || len(r) != childRandomLen {
		return false
	}
	_, err := hex.DecodeString(r)
	return err == nil
}

// ownership is what the marks on a v2 target and on its children prove to
// be cgfreeze's.
type ownership struct {
	// mark is the target's own mark (v1, direct, or a subtree freeze's
	// intent), nil when it has none.
	mark *mark
	// children are the child cgroups that are cgfreeze's: the one the
	// target's mark names, if it exists, and every child that carries a
	// subtree child's mark of its own (isChildMark: one that a cgfreeze
	// before issue 9 made and marked).
	children []string
	// childMark is the mark of the first of children that has one.
	childMark *mark
}

// any tells whether the marks prove anything to be cgfreeze's.
func (o ownership) any() bool {
	return o.mark != nil || len(o.children) > 0
}

// subtreeChildren returns the child cgroups frozen in place that the marks
// record, from the target's mark or else from its child's.
func (o ownership) subtreeChildren() []string {
	if o.mark != nil && o.mark.Strategy == StrategySubtree {
		return o.mark.Children
	}
	if o.childMark != nil {
		return o.childMark.Children
	}
	return nil
}

// owned reads the marks of cgPath and of its children. With scan false
// only the target's mark is read, and the child it names taken if it
// exists: the cheap form, for a thaw of a freeze made with the intent.
func owned(root *mount.Root, cgPath string, scan bool) (ownership, error) {
	return ownedAt(root, nil, cgPath, scan)
}

// ownedAt is owned, reading cgPath's mark and children through dir, the
// directory held open (the holder's lock), when dir is not nil.
func ownedAt(root *mount.Root, dir *os.File, cgPath string, scan bool) (ownership, error) {
	var o ownership
	m, err := readMarkAt(root, dir, cgPath)
	if err != nil {
		return o, err
	}
	o.mark = m
	seen := map[string]bool{}
	if m != nil && m.Child != "" {
		if strings.Contains(m.Child, "/") || m.Child == "." || m.Child == ".." {
			return o, fmt.Errorf("%s: malformed %s mark: child %q", cgPath, markXattr, m.Child)
		}
		ok, err := root.Exists(path.Join(cgPath, m.Child))
		if err != nil {
			return o, err
		}
		if ok {
			o.children = append(o.children, m.Child)
			seen[m.Child] = true
			o.childMark, _ = readMark(root, path.Join(cgPath, m.Child))
		}
	}
	if !scan {
		return o, nil
	}
	var names []string
	if dir != nil {
		names, err = root.ChildrenAt(dir, cgPath)
	} else {
		names, err = root.Children(cgPath)
	}
	if err != nil {
		return o, ignoreCgroupRemoved(err)
	}
	for _, name := range names {
		if seen[name] {
			continue
		}
		if !IsChildName(name) {
			continue
		}
		cm, err := readMark(root, path.Join(cgPath, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return o, err
		}
		if !isChildMark(cm) {
			continue
		}
		o.children = append(o.children, name)
		if o.childMark == nil {
			o.childMark = cm
		}
	}
	return o, nil
}

// ownedByParent tells whether the cgroup at cgPath is a child that a
// subtree freeze of its parent made: its parent's mark names it, or it
// carries a subtree child's mark of its own.
func ownedByParent(root *mount.Root, cgPath string) bool {
	o, err := owned(root, path.Dir(cgPath), false)
	if err == nil && slices.Contains(o.children, path.Base(cgPath)) {
		return true
	}
	m, err := readMark(root, cgPath)
	return err == nil && isChildMark(m)
}

// isChildMark tells whether a mark is the one a subtree freeze puts on the
// child it made: strategy subtree, and no child of its own to name. A mark
// with another strategy, or one naming a child (an intent), is the mark of
// a target that a cgfreeze froze, which a freeze of its parent must leave
// alone, not recover as its own child.
func isChildMark(m *mark) bool {
	return m != nil && m.Strategy == StrategySubtree && m.Child == ""
}

// childMark is the mark a subtree freeze puts on the child it made: the
// target's intent without the child's name.
func childMark(intent mark) mark {
	intent.Child = ""
	return intent
}
