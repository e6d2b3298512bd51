package mount

import (
	"bufio"
	"io"
	"os"
	"strings"
)

// SuperOptions returns the superblock options of the first mount of type
// fstype in a /proc/<pid>/mountinfo stream, without "rw"/"ro", and whether
// one was found. For cgroup2 these are the hierarchy-wide flags in force
// (nsdelegate, memory_recursiveprot, ...).
func SuperOptions(r io.Reader, fstype string) ([]string, bool, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		// 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
		_, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		fields := strings.Fields(post)
		if len(fields) < 3 || fields[0] != fstype {
			continue
		}
		var opts []string
		for _, o := range strings.Split(fields[2], ",") {
			if o != "rw" && o != "ro" && o != "" {
				opts = append(opts, o)
			}
		}
		return opts, true, nil
	}
	return nil, false, s.Err()
}

// SuperOptionsFromFiles tries each mountinfo file in turn and returns the
// options of the first one that shows a mount of fstype.
func SuperOptionsFromFiles(fstype string, paths ...string) ([]string, bool) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		opts, ok, err := SuperOptions(f, fstype)
		f.Close()
		if err == nil && ok {
			return opts, true
		}
	}
	return nil, false
}
