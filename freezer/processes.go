//go:build linux

package freezer

import (
	"fmt"
	"path"
	"strings"

	"github.com/cgfreeze/cgfreeze/mount"
	"github.com/cgfreeze/cgfreeze/procs"
)

// countProcesses counts the processes in a cgroup and its descendants.
func countProcesses(root *mount.Root, cgPath string) (int, error) {
	pids, err := treePIDs(root, cgPath)
	return len(pids), err
}

// treePopulated tells whether a cgroup or one of its descendants holds a
// process, reading only the start of each cgroup.procs (opened anew: a v1
// cgroup.procs kept open may list what its open file cached), so that a
// cgroup of thousands of processes costs no more than an empty one.
func treePopulated(root *mount.Root, cgPath string) (bool, error) {
	pr, err := root.OpenProbe(path.Join(cgPath, "cgroup.procs"))
	if err != nil {
		return false, err
	}
	var buf [16]byte
	b, err := pr.Read(buf[:])
	_ = pr.Close()
	if err != nil || len(b) != 0 {
		return err == nil, err
	}
	children, err := root.Children(cgPath)
	if err != nil {
		return false, err
	}
	for _, c := range children {
		ok, err := treePopulated(root, path.Join(cgPath, c))
		if ignoreCgroupRemoved(err) != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// treePIDs lists the processes in a cgroup and its descendants, as
// cgroup.procs lists them to the mount's thread: in the caller's PID
// namespace, 0 for a process outside it. A child cgroup removed meanwhile
// lists nothing.
func treePIDs(root *mount.Root, cgPath string) ([]int, error) {
	content, err := root.ReadFile(path.Join(cgPath, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	pids, err := procs.ParsePIDs(strings.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("%s/cgroup.procs: %w", cgPath, err)
	}
	children, err := root.Children(cgPath)
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		more, err := treePIDs(root, path.Join(cgPath, c))
		if err != nil {
			if ignoreCgroupRemoved(err) == nil {
				continue
			}
			return nil, err
		}
		pids = append(pids, more...)
	}
	return pids, nil
}

// Processes lists the processes of the target's cgroup and of every cgroup
// below it (the cgfreeze child of a subtree freeze included): the processes
// a freeze holds. PIDs are as cgfreeze's own PID namespace numbers them;
// hidden counts the processes outside that namespace, which cgroup.procs
// lists as 0 and which are left out of pids.
func (t *Target) Processes() (pids []int, hidden int, err error) {
	err = t.fs.Do(func(root *mount.Root) error {
		all, err := treePIDs(root, t.Path)
		if err != nil {
			return classify(err)
		}
		seen := make(map[int]bool, len(all))
		for _, pid := range all {
			switch {
			case pid == 0:
				hidden++
			case !seen[pid]:
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids, hidden, err
}
