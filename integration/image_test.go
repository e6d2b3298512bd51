package integration

import (
	"archive/tar"
	"compress/gzip"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The image, built from the repository's Dockerfile by TestMain (buildImage)
// and unpacked for runc.
var (
	// imageRootfs is the image's file system, unpacked: the agent
	// containers' root.
	imageRootfs string
	// imageConfig is the image's configuration (entrypoint, labels).
	imageConfig ociImageConfig
	// imageVersion is the version stamped into the image's binary.
	imageVersion string
	// imageBytes is the size of the image as pushed: manifest, config and
	// compressed layers.
	imageBytes int64
	// imageBinInfo identifies the image's binary, to recognise agent
	// processes through /proc/PID/exe.
	imageBinInfo os.FileInfo
	// runcPath is runc, by absolute path.
	runcPath string
)

const imageName = "localhost/cgfreeze:itest"

// ociImageConfig is the part of an OCI image configuration the suite reads
// (image-spec's config.json).
type ociImageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// buildImage builds the Dockerfile at the repository's root the way CI does
// without a Docker engine: buildah, chroot isolation (no runtime, no
// network), with BINARY=prebuilt taking a binary that go build made here
// (the Dockerfile's default stage would pull a Go image). It pushes the
// image to an OCI layout and unpacks it into dir/rootfs. buildah's storage
// is private to the run and removed.
func buildImage(dir, goTool string) error {
	buildah, err := exec.LookPath("buildah")
	if err != nil {
		return fmt.Errorf("buildah is missing (%w): apt-get install buildah", err)
	}
	if runcPath, err = exec.LookPath("runc"); err != nil {
		return fmt.Errorf("runc is missing (%w): apt-get install runc", err)
	}
	if runcPath, err = filepath.Abs(runcPath); err != nil {
		return err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	imageVersion = "itest-" + hex.EncodeToString(rnd[:])

	ctx := filepath.Join(dir, "image-context")
	if err := os.Mkdir(ctx, 0o755); err != nil {
		return err
	}
	// The same command as the Dockerfile's build stage.
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-s -w -X main.version="+imageVersion,
		"-o", filepath.Join(ctx, "cgfreeze"), "github.com/cgfreeze/cgfreeze")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build of the image's binary failed: %w\n%s", err, out)
	}
	dockerfile, err := filepath.Abs("../Dockerfile")
	if err != nil {
		return err
	}
	store := filepath.Join(dir, "buildah")
	defer func() { _ = os.RemoveAll(store) }()
	bh := func(args ...string) error {
		args = append([]string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}, args...)
		c := exec.Command(buildah, args...)
		// No registry is asked for anything: the build uses only scratch.
		c.Env = append(os.Environ(), "BUILDAH_ISOLATION=chroot")
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("buildah %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 4000))
		}
		return nil
	}
	start := time.Now()
	if err := bh("build", "--isolation", "chroot", "--pull=never", "--build-arg", "BINARY=prebuilt", "--build-arg", "VERSION="+imageVersion,
		"-f", dockerfile, "-t", imageName, ctx); err != nil {
		return err
	}
	layout := filepath.Join(dir, "oci")
	if err := bh("push", imageName, "oci:"+layout+":itest"); err != nil {
		return err
	}
	if err := bh("rmi", "--all", "--force"); err != nil {
		return err
	}
	imageRootfs = filepath.Join(dir, "rootfs")
	if err := unpackOCI(layout, "itest", imageRootfs); err != nil {
		return fmt.Errorf("unpack %s: %w", layout, err)
	}
	if imageBinInfo, err = os.Stat(filepath.Join(imageRootfs, "cgfreeze")); err != nil {
		return fmt.Errorf("the image has no /cgfreeze: %w", err)
	}
	fmt.Fprintf(os.Stderr, "integration: built image %s (%d bytes as pushed, binary %d bytes, version %s) with buildah in %v\n",
		imageName, imageBytes, imageBinInfo.Size(), imageVersion, time.Since(start).Round(time.Millisecond))
	return nil
}

// unpackOCI unpacks the image tagged ref in an OCI layout into dest and
// reads its configuration. It takes regular files, directories and
// symbolic links only, and refuses paths that leave dest.
func unpackOCI(layout, ref, dest string) error {
	blob := func(d ociDescriptor) string {
		algo, hexd, _ := strings.Cut(d.Digest, ":")
		return filepath.Join(layout, "blobs", algo, hexd)
	}
	readJSON := func(file string, v any) error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	var index struct {
		Manifests []struct {
			ociDescriptor
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := readJSON(filepath.Join(layout, "index.json"), &index); err != nil {
		return err
	}
	var manifest *ociDescriptor
	for i, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == ref {
			manifest = &index.Manifests[i].ociDescriptor
		}
	}
	if manifest == nil {
		return fmt.Errorf("no manifest tagged %q in index.json", ref)
	}
	var m struct {
		Config ociDescriptor   `json:"config"`
		Layers []ociDescriptor `json:"layers"`
	}
	if err := readJSON(blob(*manifest), &m); err != nil {
		return err
	}
	if err := readJSON(blob(m.Config), &imageConfig); err != nil {
		return err
	}
	imageBytes = manifest.Size + m.Config.Size
	if err := os.Mkdir(dest, 0o755); err != nil {
		return err
	}
	for _, l := range m.Layers {
		imageBytes += l.Size
		if err := unpackLayer(blob(l), l.MediaType, dest); err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
	}
	return nil
}

func unpackLayer(file, mediaType, dest string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	var r io.Reader = f
	if strings.HasSuffix(mediaType, "+gzip") || strings.HasSuffix(mediaType, ".gzip") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		r = gz
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		if strings.HasPrefix(path.Base(name), ".wh.") {
			return fmt.Errorf("whiteout %s: the image has one layer, nothing to delete", hdr.Name)
		}
		target := filepath.Join(dest, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			err = writeFile(target, tr, os.FileMode(hdr.Mode).Perm())
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, target)
		default:
			err = fmt.Errorf("%s: unexpected entry type %q", hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(target string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// TestImage checks the image that TestMain built from the Dockerfile: one
// static binary in an otherwise empty image, cgfreeze as the entrypoint
// with no arguments (so that kubectl debug --image=... freezes by
// default), the OCI labels; and that it runs under runc.
func TestImage(t *testing.T) {
	c := imageConfig.Config
	if strings.Join(c.Entrypoint, " ") != "/cgfreeze" || len(c.Cmd) != 0 {
		t.Errorf("image entrypoint %q, cmd %q; want [/cgfreeze] and no cmd", c.Entrypoint, c.Cmd)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   "https://github.com/cgfreeze/cgfreeze",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.version":  imageVersion,
	} {
		if got := c.Labels[k]; got != v {
			t.Errorf("image label %s = %q, want %q", k, got, v)
		}
	}
	if imageConfig.OS != "linux" || imageConfig.Architecture == "" {
		t.Errorf("image os/architecture %q/%q", imageConfig.OS, imageConfig.Architecture)
	}
	var files []string
	err := filepath.Walk(imageRootfs, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != imageRootfs {
			rel, _ := filepath.Rel(imageRootfs, p)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// runc adds the mount points it needs (dev, proc, sys) when it runs
	// the image; the image itself brings only the binary.
	for _, f := range files {
		switch strings.Split(f, string(filepath.Separator))[0] {
		case "cgfreeze", "dev", "proc", "sys":
		default:
			t.Errorf("the image holds %s: want the binary alone", f)
		}
	}
	bin, err := elf.Open(filepath.Join(imageRootfs, "cgfreeze"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bin.Close() }()
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the image's binary is dynamically linked (%v): want CGO_ENABLED=0", p.Type)
		}
	}
	t.Logf("image %s: %d bytes as pushed, binary %d bytes", imageName, imageBytes, imageBinInfo.Size())

	// Run it: `cgfreeze version` from the image's entrypoint under runc.
	h := newHarness(t)
	rt := h.newRuntime(2)
	out := rt.runOnce("version", rt.agentSpec(nil, []string{"version"}))
	if want := "cgfreeze " + imageVersion + "\n"; out != want {
		t.Errorf("cgfreeze version in the image printed %q, want %q", out, want)
	}
	rt.cleanup()
	h.checkLeftovers()
}
