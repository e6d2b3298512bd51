package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewManifest is the part of krew's v1alpha2 Plugin that the test checks.
type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

// TestKrewManifest checks krew/freeze.yaml as krew's validation does
// (krew/check.sh installs from it with krew itself): the plugin's name is
// what kubectl calls (kubectl freeze), one platform per OS and arch the
// plugin builds for, each with an https URI of that version's archive, a
// sha256, a bin that the archive's files install.
func TestKrewManifest(t *testing.T) {
	b, err := os.ReadFile("../../krew/freeze.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m krewManifest
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" {
		t.Errorf("apiVersion %q kind %q", m.APIVersion, m.Kind)
	}
	if m.Metadata.Name != "freeze" {
		t.Errorf("metadata.name %q: kubectl runs kubectl-freeze as `kubectl freeze`", m.Metadata.Name)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(m.Spec.Version) {
		t.Errorf("spec.version %q is not vMAJOR.MINOR.PATCH", m.Spec.Version)
	}
	if m.Spec.ShortDescription == "" || len(m.Spec.ShortDescription) > 64 || m.Spec.Description == "" || !strings.HasPrefix(m.Spec.Homepage, "https://") {
		t.Errorf("shortDescription %q (at most 64), description, homepage %q", m.Spec.ShortDescription, m.Spec.Homepage)
	}
	want := map[string]bool{"linux/amd64": true, "linux/arm64": true, "darwin/amd64": true, "darwin/arm64": true, "windows/amd64": true}
	for _, p := range m.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		key := os + "/" + arch
		if !want[key] {
			t.Errorf("platform %q: unexpected or twice", key)
		}
		delete(want, key)
		if !strings.HasPrefix(p.URI, "https://") || !strings.Contains(p.URI, "/"+m.Spec.Version+"/") ||
			!strings.HasSuffix(p.URI, "_"+m.Spec.Version+"_"+os+"_"+arch+".tar.gz") {
			t.Errorf("%s: uri %q is not this version's archive for it (as krew/release.sh names it)", key, p.URI)
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Sha256) {
			t.Errorf("%s: sha256 %q", key, p.Sha256)
		}
		bin := "kubectl-freeze"
		if os == "windows" {
			bin += ".exe"
		}
		if p.Bin != bin {
			t.Errorf("%s: bin %q, want %q", key, p.Bin, bin)
		}
		var hasBin, hasLicense bool
		for _, f := range p.Files {
			hasBin = hasBin || (f.From == bin && f.To == ".")
			hasLicense = hasLicense || f.From == "LICENSE"
		}
		if !hasBin || !hasLicense {
			t.Errorf("%s: files %+v do not install %s and LICENSE", key, p.Files, bin)
		}
	}
	for k := range want {
		t.Errorf("no platform %s", k)
	}
}
