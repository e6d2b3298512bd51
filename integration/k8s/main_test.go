// Package k8s runs cgfreeze's `kubectl debug` recipes against a real
// single-node Kubernetes cluster on this machine: kube-apiserver, kubelet,
// kubectl, kube-controller-manager and kube-scheduler built from the
// k8s.io/kubernetes module (build-kubernetes.sh, cached by version outside
// the checkout), containerd, runc and etcd from Debian, everything on
// loopback and under one scratch directory (cluster.sh). The images (pause,
// a busybox workload, and cgfreeze from the repository's Dockerfile with
// BINARY=prebuilt) are built here with buildah and imported into
// containerd: nothing is pulled.
//
// Every kubectl debug scenario runs on a cgroup v1 node (this host's
// hierarchies) and on an emulated cgroup v2 node (cgroup2 with nsdelegate
// at /sys/fs/cgroup in the node's mount namespace); the kubectl freeze
// scenarios (TestKubectlFreezeV1) run on the v1 node, one of them with a
// second node (a second containerd and kubelet on this machine: cluster.sh
// node2). The run fails if anything of the cluster is left on the machine
// afterwards.
//
// Run it as root with `go test -count=1 -v -timeout 60m ./integration/k8s/`
// (integration/test.sh does it). It takes /tmp/cgfreeze-itest.lock itself
// while a cluster runs, after the long Kubernetes build: do not wrap it in
// flock. Without root, or without what it needs, it fails, unless
// CGFREEZE_ALLOW_SKIP=1 (and CI is not "true"), which skips it.
package k8s

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kubernetes is the version built and run: 1.35 turns failCgroupV1 on and
// is the last to support containerd 1.x (Debian 12 has 1.6).
const kubernetesVersion = "v1.34.0"

// The images the cluster runs, all local (imagePullPolicy: Never).
const (
	imageCgfreeze = "localhost/cgfreeze:itest"
	imageWorkload = "localhost/cgfreeze-workload:itest"
	imagePause    = "localhost/cgfreeze-pause:itest"
)

// Set up by TestMain.
var (
	// binDir holds the Kubernetes binaries; kubectl is called by its path
	// there (a kubectl of another version may be on PATH).
	binDir string
	// imageDir holds the images as docker-archive tarballs.
	imageDir string
	// runcWrapper is the runc of the v2 node (testdata/runcwrap).
	runcWrapper string
	// imageVersion is the version stamped into the image's cgfreeze.
	imageVersion string
	// clusterScript is cluster.sh, by absolute path.
	clusterScript string
	// timings are what each part of the run took, printed at the end.
	timings   []string
	timingsMu sync.Mutex
)

// What the run needs from Debian (apt-get install).
var debianTools = map[string]string{
	"containerd": "containerd", "ctr": "containerd", "etcd": "etcd-server", "runc": "runc",
	"buildah": "buildah", "tmux": "tmux", "openssl": "openssl", "nsenter": "util-linux",
	"unshare": "util-linux", "ip": "iproute2", "/usr/lib/cni/bridge": "containernetworking-plugins",
	"/bin/busybox": "busybox-static", "flock": "util-linux",
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

// fail ends TestMain with a message, or skips when that is allowed.
func fail(format string, args ...any) int {
	msg := fmt.Sprintf("k8s: "+format, args...)
	if os.Getenv("CGFREEZE_ALLOW_SKIP") == "1" && os.Getenv("CI") != "true" {
		fmt.Fprintln(os.Stderr, msg+"; skipped because CGFREEZE_ALLOW_SKIP=1")
		return 0
	}
	fmt.Fprintln(os.Stderr, msg)
	return 1
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return fail("the Kubernetes suite needs root (it runs a kubelet and containerd): run it with sudo")
	}
	var missing []string
	for tool, pkg := range debianTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		return fail("missing tools: apt-get install %s (integration/test.sh installs them)", strings.Join(dedup(missing), " "))
	}
	var err error
	if clusterScript, err = filepath.Abs("cluster.sh"); err != nil {
		return fail("%v", err)
	}

	// The Kubernetes binaries: cached by version, built once (the long part,
	// done without the integration lock).
	start := time.Now()
	out, err := exec.Command("bash", "build-kubernetes.sh", kubernetesVersion).Output()
	if err != nil {
		return fail("building Kubernetes %s failed: %v", kubernetesVersion, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	binDir = lines[len(lines)-1]
	timing("kubernetes binaries (build-kubernetes.sh)", time.Since(start))

	work, err := os.MkdirTemp("", "cgfreeze-k8s-build-")
	if err != nil {
		return fail("%v", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	start = time.Now()
	if err := buildImages(work); err != nil {
		return fail("building the images: %v", err)
	}
	timing("binaries and images (go build, buildah)", time.Since(start))

	// Interrupted (Ctrl-C, CI cancelling the job): tear the cluster down
	// before going. SIGKILL and the test binary's time-out cannot be caught:
	// the next run sweeps what they left (cluster.sh up).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "k8s: %v: tearing the cluster down\n", s)
		teardownNow()
		os.Exit(1)
	}()

	code := m.Run()
	teardownNow()
	if out, err := exec.Command("bash", clusterScript, "check").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "k8s: left behind after the run:\n%s", out)
		code = 1
	}
	releaseLock()
	timingsMu.Lock()
	fmt.Fprintf(os.Stderr, "k8s: timings:\n  %s\n", strings.Join(timings, "\n  "))
	timingsMu.Unlock()
	return code
}

func timing(what string, d time.Duration) {
	timingsMu.Lock()
	defer timingsMu.Unlock()
	timings = append(timings, fmt.Sprintf("%-60s %v", what, d.Round(100*time.Millisecond)))
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "/usr/local/go/bin/go"
}

func run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(string(out), 3000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// buildImages builds cgfreeze (as the Dockerfile's build stage does), the
// pause and runc-wrapper programs, and the three images, into
// work/images/*.tar.
func buildImages(work string) error {
	imageVersion = fmt.Sprintf("k8s-itest-%d", time.Now().Unix())
	ctx := filepath.Join(work, "context")
	imageDir = filepath.Join(work, "images")
	for _, d := range []string{ctx, imageDir, filepath.Join(work, "pause"), filepath.Join(work, "workload", "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	goEnv := []string{"CGO_ENABLED=0"}
	if err := run("../..", goEnv, goTool(), "build", "-trimpath", "-ldflags", "-s -w -X main.version="+imageVersion,
		"-o", filepath.Join(ctx, "cgfreeze"), "."); err != nil {
		return err
	}
	if err := run(".", goEnv, goTool(), "build", "-trimpath", "-ldflags", "-s -w",
		"-o", filepath.Join(work, "pause", "pause"), "./testdata/pause"); err != nil {
		return err
	}
	runcPath, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	if runcPath, err = filepath.EvalSymlinks(runcPath); err != nil {
		return err
	}
	runcWrapper = filepath.Join(work, "runcwrap")
	if err := run(".", goEnv, goTool(), "build", "-trimpath", "-ldflags", "-s -w -X main.runc="+runcPath,
		"-o", runcWrapper, "./testdata/runcwrap"); err != nil {
		return err
	}
	// The workload image: busybox and its applets' links.
	wl := filepath.Join(work, "workload")
	if err := run(".", nil, "cp", "/bin/busybox", filepath.Join(wl, "bin", "busybox")); err != nil {
		return err
	}
	if err := run(".", nil, "/bin/busybox", "--install", "-s", filepath.Join(wl, "bin")); err != nil {
		return err
	}
	// busybox --install links to the path it was run by: relink to the image's.
	entries, err := os.ReadDir(filepath.Join(wl, "bin"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "busybox" {
			continue
		}
		p := filepath.Join(wl, "bin", e.Name())
		_ = os.Remove(p)
		if err := os.Symlink("busybox", p); err != nil {
			return err
		}
	}

	store := filepath.Join(work, "buildah")
	bh := func(args ...string) (string, error) {
		args = append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}, args...)
		c := exec.Command("buildah", args...)
		c.Env = append(os.Environ(), "BUILDAH_ISOLATION=chroot")
		var stderr strings.Builder
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return "", fmt.Errorf("buildah %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 3000))
		}
		return strings.TrimSpace(string(out)), nil
	}
	defer func() {
		_, _ = bh("rm", "--all")
		_, _ = bh("rmi", "--all", "--force")
		_ = os.RemoveAll(store)
	}()
	fromScratch := func(name, src, dst string, entrypoint string) error {
		c, err := bh("from", "scratch")
		if err != nil {
			return err
		}
		if _, err := bh("copy", c, src, dst); err != nil {
			return err
		}
		if _, err := bh("config", "--entrypoint", entrypoint, c); err != nil {
			return err
		}
		if _, err := bh("commit", c, name); err != nil {
			return err
		}
		_, err = bh("rm", c)
		return err
	}
	if err := fromScratch(imagePause, filepath.Join(work, "pause"), "/", `["/pause"]`); err != nil {
		return err
	}
	if err := fromScratch(imageWorkload, wl, "/", `["/bin/sh"]`); err != nil {
		return err
	}
	dockerfile, err := filepath.Abs("../../Dockerfile")
	if err != nil {
		return err
	}
	if _, err := bh("build", "--isolation", "chroot", "--pull=never", "--build-arg", "BINARY=prebuilt",
		"--build-arg", "VERSION="+imageVersion, "-f", dockerfile, "-t", imageCgfreeze, ctx); err != nil {
		return err
	}
	for _, img := range []string{imagePause, imageWorkload, imageCgfreeze} {
		name := strings.TrimSuffix(filepath.Base(img), ":itest")
		if _, err := bh("push", img, "docker-archive:"+filepath.Join(imageDir, name+".tar")+":"+img); err != nil {
			return err
		}
	}
	return nil
}
