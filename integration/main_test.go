// Package integration runs the cgfreeze binary against real cgroups on this
// machine: v1 freezer cgroups, cgroup v2 cgroups frozen directly, and the
// `kubectl debug` layout (a target "container" with its own PID, mount and
// cgroup namespaces, an agent in a sibling cgroup namespace, nsdelegate on).
//
// It also builds the container image from the Dockerfile with buildah and
// runs it under runc as an ephemeral container next to busybox containers
// (kubernetes_test.go): the `kubectl debug` example of the README, on v1 and
// v2, with runc exec, a shared PID namespace and runc pause.
//
// It needs root, util-linux (unshare, nsenter), /bin/busybox
// (busybox-static), runc and buildah. Everything it creates is named
// cgfreeze-test-* and removed when each test ends. cgfreeze is only ever pointed at processes the
// tests started, with an explicit --pid, or at PID 1 of a PID namespace a test
// made.
//
// Run it with `go test -count=1 -v ./integration/` as root (integration/test.sh
// does it). Without root it fails, unless CGFREEZE_ALLOW_SKIP=1 (and CI is not
// "true"), which skips it. It holds /tmp/cgfreeze-itest.lock (cgtest.Lock)
// from before it reads the machine's cgroup settings until it has restored
// them, as the Kubernetes suite, the bench and the demo do: do not run it
// under flock(1), whose lock it would wait for in vain.
package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgfreeze/cgfreeze/internal/cgtest"
)

// Set up by TestMain.
var (
	// binPath is the cgfreeze binary built for this run.
	binPath string
	// binInfo identifies binPath, to recognise cgfreeze processes through
	// /proc/PID/exe from any mount namespace.
	binInfo os.FileInfo
	// cg2Mount is where this machine's cgroup2 hierarchy is mounted.
	cg2Mount string
	// cg2OrigOptions are its superblock options when the suite started;
	// they are put back at the end if a test left them changed.
	cg2OrigOptions []string
	// cg2RootSubtree is the cgroup2 root's cgroup.subtree_control when the
	// suite started.
	cg2RootSubtree []string
	// v1FreezerMount is where the v1 freezer hierarchy's root is mounted,
	// "" when this machine has none.
	v1FreezerMount string
	// pidMax is /proc/sys/kernel/pid_max: no process can have this PID.
	pidMax int
	// util-linux's tools, by absolute path: busybox sh would run its own
	// applets of the same names, which lack options the tests need.
	unsharePath, nsenterPath, mountPath string
)

const busybox = "/bin/busybox"

// lockWait bounds the wait for cgtest.LockPath: the Kubernetes suite holds
// it for about 12 minutes, a whole bench run for 13.
const lockWait = 30 * time.Minute

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		// A helper process of a connection test (helpers_test.go).
		os.Exit(runHelper(name, os.Args[1:]))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		msg := "integration: the integration suite needs root (it creates cgroups, namespaces and mounts): run it with sudo"
		if os.Getenv("CGFREEZE_ALLOW_SKIP") == "1" && os.Getenv("CI") != "true" {
			fmt.Fprintln(os.Stderr, msg+"; skipped because CGFREEZE_ALLOW_SKIP=1")
			return 0
		}
		fmt.Fprintln(os.Stderr, msg+" (set CGFREEZE_ALLOW_SKIP=1 to skip it outside CI)")
		return 1
	}
	// Before anything reads the machine's cgroup settings (discoverHost
	// records the cgroup2 options the suite must restore): another suite,
	// the bench or the demo may have switched them for a while.
	release, err := cgtest.Lock(lockWait, func() {
		fmt.Fprintf(os.Stderr, "integration: waiting for %s (another suite, the bench or the demo holds it)\n", cgtest.LockPath)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer release()
	if fi, err := os.Stat(busybox); err != nil || !fi.Mode().IsRegular() {
		fmt.Fprintf(os.Stderr, "integration: %s is missing (%v): apt-get install busybox-static\n", busybox, err)
		return 1
	}
	for tool, p := range map[string]*string{"unshare": &unsharePath, "nsenter": &nsenterPath, "mount": &mountPath} {
		path, err := exec.LookPath(tool)
		if err == nil {
			path, err = filepath.Abs(path)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: %s is missing (%v): apt-get install util-linux mount\n", tool, err)
			return 1
		}
		*p = path
	}
	if err := discoverHost(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}

	warnStale()

	dir, err := os.MkdirTemp("", "cgfreeze-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := build(dir); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	if err := buildImage(dir, goTool()); err != nil {
		fmt.Fprintf(os.Stderr, "integration: the image: %v\n", err)
		return 1
	}

	code := m.Run()
	stopRabbit()

	// runc enables controllers in the cgroup2 root's subtree_control; a
	// runtime's cleanup disables them, and this is the safety net.
	if err := restoreRootSubtree(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		code = 1
	}

	// A test that enabled nsdelegate restores the options itself; this is
	// the safety net for one that failed half-way.
	if now, err := cg2SuperOptions(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: cannot read the cgroup2 options at the end: %v\n", err)
		code = 1
	} else if !sameOptions(now, cg2OrigOptions) {
		fmt.Fprintf(os.Stderr, "integration: the cgroup2 hierarchy's options are %q, not %q as before the suite: restoring them\n",
			strings.Join(now, ","), strings.Join(cg2OrigOptions, ","))
		if err := setCg2Options(cg2OrigOptions); err != nil {
			fmt.Fprintf(os.Stderr, "integration: restoring the cgroup2 options failed: %v\n", err)
		}
		code = 1
	}
	return code
}

func goTool() string {
	tool, err := exec.LookPath("go")
	if err != nil {
		tool = "/usr/local/go/bin/go"
		if root := os.Getenv("GOROOT"); root != "" {
			tool = filepath.Join(root, "bin", "go")
		}
	}
	return tool
}

func build(dir string) error {
	binPath = filepath.Join(dir, "cgfreeze")
	cmd := exec.Command(goTool(), "build", "-o", binPath, "github.com/cgfreeze/cgfreeze")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build of cgfreeze failed: %w\n%s", err, out)
	}
	binInfo, err = os.Stat(binPath)
	return err
}

// mountEntry is one line of /proc/PID/mountinfo.
type mountEntry struct {
	root, mountPoint, fsType, source string
	superOptions                     []string
}

// readMountinfo reads a mountinfo file with github.com/moby/sys/mountinfo
// (as package mount does); a line it cannot parse fails the test's setup.
func readMountinfo(file string) ([]mountEntry, error) {
	entries, err := cgtest.ReadMountinfo(file)
	if err != nil {
		return nil, err
	}
	out := make([]mountEntry, len(entries))
	for i, e := range entries {
		out[i] = mountEntry{root: e.Root, mountPoint: e.MountPoint, fsType: e.FSType, source: e.Source, superOptions: e.SuperOptions}
	}
	return out, nil
}

// discoverHost finds the cgroup2 mount and the v1 freezer mount.
func discoverHost() error {
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var cg2 []mountEntry
	for _, me := range mounts {
		switch me.fsType {
		case "cgroup2":
			if me.root == "/" {
				cg2 = append(cg2, me)
			}
		case "cgroup":
			if me.root == "/" && slices.Contains(me.superOptions, "freezer") && v1FreezerMount == "" {
				v1FreezerMount = me.mountPoint
			}
		}
	}
	if len(cg2) == 0 {
		return errors.New("no cgroup2 hierarchy is mounted (fstype cgroup2 in /proc/self/mountinfo); the suite needs one")
	}
	cg2Mount = cg2[0].mountPoint
	for _, me := range cg2 {
		if me.mountPoint == "/sys/fs/cgroup" || me.mountPoint == "/sys/fs/cgroup/unified" {
			cg2Mount = me.mountPoint
			break
		}
	}
	if _, err := os.Stat(filepath.Join(cg2Mount, "cgroup.procs")); err != nil {
		return fmt.Errorf("cgroup2 mount %s: %w", cg2Mount, err)
	}
	if cg2OrigOptions, err = cg2SuperOptions(); err != nil {
		return err
	}
	sub, err := os.ReadFile(filepath.Join(cg2Mount, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	cg2RootSubtree = strings.Fields(string(sub))
	ns, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		return err
	}
	if ns != "cgroup:[4026531835]" {
		return fmt.Errorf("the suite runs in cgroup namespace %s, not the initial one: it needs the host's cgroup view", ns)
	}
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return err
	}
	if pidMax, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return err
	}
	return nil
}

// cg2SuperOptions returns the cgroup2 hierarchy's superblock options now,
// as the mount at cg2Mount shows them.
func cg2SuperOptions() ([]string, error) { return cgtest.Cg2Options(cg2Mount) }

func sameOptions(a, b []string) bool { return cgtest.SameOptions(a, b) }

// setCg2Options applies superblock options to the whole cgroup2 hierarchy
// (cgtest.SetCg2Options).
func setCg2Options(opts []string) error { return cgtest.SetCg2Options(cg2Mount, opts) }

// enableNsdelegate switches nsdelegate on for the cgroup2 hierarchy for the
// rest of the test, as systemd hosts have it, and restores the options
// after the test.
func enableNsdelegate(t testing.TB, h *harness) {
	t.Helper()
	before, err := cg2SuperOptions()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(before, "nsdelegate") {
		return
	}
	want := append(slices.Clone(before), "nsdelegate")
	if err := setCg2Options(want); err != nil {
		t.Fatalf("enable nsdelegate: %v", err)
	}
	h.cg2Options = want
	t.Cleanup(func() {
		if err := setCg2Options(before); err != nil {
			t.Errorf("restore the cgroup2 options %q: %v", strings.Join(before, ","), err)
		}
	})
}

// warnStale reports cgroups that an earlier run left behind (a test binary
// that was killed cannot clean up). They are not removed: another run may
// be using them.
func warnStale() {
	for _, mnt := range []string{cg2Mount, v1FreezerMount} {
		if mnt == "" {
			continue
		}
		stale, _ := filepath.Glob(filepath.Join(mnt, "cgfreeze-test-*"))
		for _, d := range stale {
			fmt.Fprintf(os.Stderr, "integration: warning: %s is left from an earlier run (or another run is going on); remove it by hand: thaw, kill its processes, rmdir\n", d)
		}
	}
}

// restoreRootSubtree disables the controllers that were enabled in the
// cgroup2 root's cgroup.subtree_control during the suite (runc enables every
// available one on its way down to a container's cgroup) and reports that
// it had to.
func restoreRootSubtree() error {
	file := filepath.Join(cg2Mount, "cgroup.subtree_control")
	added, err := cgtest.RestoreSubtreeControl(cg2Mount, cg2RootSubtree)
	if err != nil {
		return fmt.Errorf("%s had %q enabled at the end, not there before the suite, and they cannot all be disabled: %w", file, added, err)
	}
	if len(added) > 0 {
		return fmt.Errorf("%s had %q enabled at the end, not there before the suite (disabled now)", file, added)
	}
	return nil
}
