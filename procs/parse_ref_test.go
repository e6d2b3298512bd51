package procs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// parseCgroupsTwoPasses is ParseCgroups as it was written before issue 10
// made it one pass (parseCgroups): the reference FuzzParseCgroups holds
// the one pass to.
func parseCgroupsTwoPasses(r io.Reader) (Cgroups, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Cgroups{}, err
	}
	c := Cgroups{V1: map[string]string{}, V1Hierarchies: map[string]string{}}
	s := bufio.NewScanner(strings.NewReader(string(data)))
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) < 3 {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry: %q", s.Text())
		}
		for _, sub := range strings.Split(parts[1], ",") {
			if sub == "" {
				c.Unified = parts[2]
			} else {
				c.V1[sub] = parts[2]
			}
		}
	}
	if err := s.Err(); err != nil {
		return Cgroups{}, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if _, err := strconv.Atoi(parts[0]); err != nil {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry %q: hierarchy ID is not a number", line)
		}
		if !strings.HasPrefix(parts[2], "/") {
			return Cgroups{}, fmt.Errorf("invalid cgroup entry %q: path is not absolute", line)
		}
		if parts[1] == "" {
			c.HasUnified = true
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			c.V1Hierarchies[ctrl] = parts[1]
		}
	}
	if len(c.V1) == 0 && !c.HasUnified {
		return Cgroups{}, errors.New("no cgroup entries")
	}
	return c, nil
}

func requireSameParse(t *testing.T, in string) {
	t.Helper()
	want, wantErr := parseCgroupsTwoPasses(strings.NewReader(in))
	got, err := ParseCgroups(strings.NewReader(in))
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseCgroups(%q) = %#v, %v; the two passes gave %#v, %v", in, got, err, want, wantErr)
	}
	if wantErr != nil && errors.Is(wantErr, bufio.ErrTooLong) != errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("ParseCgroups(%q) error %v, the two passes' %v", in, err, wantErr)
	}
}

// The one pass returns what the two passes returned, error text included.
func FuzzParseCgroups(f *testing.F) {
	for _, s := range []string{
		"", "0::/\n", "0::/", "0::/\r\n", " 0::/ \n", "0::/a b \n", "\n0::/", "0::/\n\n", "0::/\n \n",
		"12:freezer:/a\n11:cpu,cpuacct:/b\n0::/c\n", "1:name=systemd:/x\n", "x:freezer:/\n", "::/\n",
		"0::abc\n", "4:freezer:\n", "4:freezer\n", "0::/\r\n1:cpu:/a\r\n", "1:cpu,:/a\n", " 1:cpu:/a\n2:x:/b\n",
		"1:cpu:/a\n 2:x:/b\n", "0::/\u00a0\n", "\u00850::/", "0::/\x85", "1:a:b\n2::/\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { requireSameParse(t, in) })
}

// Lines about the bufio.Scanner's limit of the two passes.
func TestParseCgroupsLongLines(t *testing.T) {
	for _, n := range []int{bufio.MaxScanTokenSize - 2, bufio.MaxScanTokenSize - 1, bufio.MaxScanTokenSize, bufio.MaxScanTokenSize + 1} {
		p := "/" + strings.Repeat("a", n-len("0::/"))
		for _, in := range []string{"0::" + p, "0::" + p + "\n", "0::" + p + "\r\n", "1:cpu:/x\n0::" + p + "\n1:x\n", string(bytes.Repeat([]byte("1:cpu:/x\n"), 5000)) + "0::" + p} {
			requireSameParse(t, in)
		}
	}
}
