package mount

import (
	"bufio"
	"io"
	"os"
	"strconv"
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

// RootMounts returns the mount points at which a /proc/<pid>/mountinfo
// stream shows the root ("/") of a file system of type fstype, in the order
// listed: for cgroup2, the places where the whole hierarchy is mounted.
func RootMounts(r io.Reader, fstype string) ([]string, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	var out []string
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 1 || b[0] != fstype || a[3] != "/" {
			continue
		}
		out = append(out, unescape(a[4]))
	}
	return out, s.Err()
}

// RootMountsFromFile is RootMounts of a mountinfo file; an unreadable file
// has none.
func RootMountsFromFile(fstype, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out, err := RootMounts(f, fstype)
	if err != nil {
		return nil
	}
	return out
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
