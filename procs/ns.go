package procs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The kernel gives the initial namespaces fixed inode numbers
// (include/linux/proc_ns.h), which is how a process tells whether it runs in
// the host's namespaces.
const (
	InitCgroupNamespace uint64 = 0xEFFFFFFB
	InitPIDNamespace    uint64 = 0xEFFFFFFC
)

const errESRCH = syscall.ESRCH

// Namespace returns the inode number of the namespace of the given kind
// ("cgroup", "pid", "mnt", ...) that process pid is in, read from the
// <procRoot>/<pid>/ns/<kind> link ("cgroup:[4026531835]").
func Namespace(procRoot string, pid int, kind string) (uint64, error) {
	link := filepath.Join(procRoot, strconv.Itoa(pid), "ns", kind)
	target, err := os.Readlink(link)
	if err != nil {
		if os.IsNotExist(err) && !Exists(procRoot, pid) {
			return 0, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		// The process exists but the link does not: a kernel without
		// that namespace kind (CONFIG_CGROUPS without namespaces).
		return 0, fmt.Errorf("namespace %s of process %d: %w", kind, pid, err)
	}
	return parseNamespaceLink(target, kind)
}

func parseNamespaceLink(target, kind string) (uint64, error) {
	prefix := kind + ":["
	if !strings.HasPrefix(target, prefix) || !strings.HasSuffix(target, "]") {
		return 0, fmt.Errorf("unexpected %s namespace link %q", kind, target)
	}
	return strconv.ParseUint(target[len(prefix):len(target)-1], 10, 64)
}

// Exists tells whether process pid has an entry under procRoot.
func Exists(procRoot string, pid int) bool {
	_, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(pid)))
	return err == nil
}

// StartTime returns when process pid started, in clock ticks after boot
// (field 22 of /proc/<pid>/stat): with the PID it names one process for
// good, where a PID alone may be reused.
func StartTime(procRoot string, pid int) (uint64, error) {
	b, err := ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		if os.IsNotExist(err) {
			return 0, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return 0, err
	}
	return parseStartTime(string(b))
}

func parseStartTime(stat string) (uint64, error) {
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ")" are plain.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	fields := strings.Fields(stat[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// Dead tells whether process pid has exited and only its entry is left: a
// zombie (state Z) its parent has not reaped yet, or a task being reaped
// (X). Such a process runs nothing and its cgroup's cgroup.procs no longer
// lists it, though <procRoot>/<pid>/cgroup still names the cgroup it died
// in. In a PID namespace whose init is frozen, every orphan that exits
// stays so until the thaw: init cannot reap it (a killed cgfreeze agent in
// an ephemeral container, kubectl debug's path). A process whose stat
// cannot be read is not called dead: the callers skip processes that are
// gone by other means.
func Dead(procRoot string, pid int) bool {
	b, err := ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	state, ok := parseState(string(b))
	return ok && (state == 'Z' || state == 'X')
}

// parseState returns field 3 of /proc/<pid>/stat, the process's state.
func parseState(stat string) (byte, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+3 > len(stat) || stat[i+1] != ' ' {
		return 0, false
	}
	return stat[i+2], true
}
