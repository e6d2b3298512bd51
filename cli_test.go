package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cgfreeze/cgfreeze/contract"
)

// requireTool returns the path of a program the test runs, failing in CI
// (where .ci/run installs it) and skipping elsewhere when it is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// TestCompletionSyntax: each shell parses its script.
func TestCompletionSyntax(t *testing.T) {
	for _, sh := range completionShells {
		t.Run(sh, func(t *testing.T) {
			bin := requireTool(t, sh)
			_, script, _ := runCapture(t, "completion", sh)
			f := filepath.Join(t.TempDir(), "cgfreeze."+sh)
			if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v: %s", sh, err, out)
			}
		})
	}
}

// TestBashCompletion runs the bash script's function on command lines, as
// bash does on Tab, and checks what it offers.
func TestBashCompletion(t *testing.T) {
	bash := requireTool(t, "bash")
	_, script, _ := runCapture(t, "completion", "bash")
	f := filepath.Join(t.TempDir(), "cgfreeze.bash")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		line string // the words, the last one being completed
		want string // COMPREPLY, space-separated
	}{
		{"cgfreeze ", strings.Join(commandNames(), " ")},
		{"cgfreeze st", "status"},
		{"cgfreeze --dur", "--duration"},
		{"cgfreeze status --ex", "--exit-code"},
		{"cgfreeze thaw --dur", ""}, // --duration is freeze's only
		{"cgfreeze -o ", "text json"},
		{"cgfreeze status --output j", "json"},
		{"cgfreeze --lease ", "stdin parent"},
		{"cgfreeze --drop-connections=r", "--drop-connections=required"},
		{"cgfreeze --drop-direction ", "inbound outbound both"},
		{"cgfreeze completion ", "bash zsh fish"},
		{"cgfreeze version -", "--output -o --help"},
		{"cgfreeze --cgroup-version ", "1 2"},
	} {
		words := strings.Split(tt.line, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := ". " + f + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_cgfreeze\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v: %s", tt.line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("completing %q offers %q, want %q", tt.line, got, tt.want)
		}
	}
}

// TestManPage: groff formats the page without a warning, and it has every
// command, flag, event and exit code.
func TestManPage(t *testing.T) {
	groff := requireTool(t, "groff")
	_, page, _ := runCapture(t, "man")
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff: %v: %s", err, out)
	}
	cmd = exec.Command(groff, "-man", "-Tascii")
	cmd.Stdin = strings.NewReader(page)
	text, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	// Undo the bold and underline overstrikes of -Tascii.
	plain := stripOverstrike(string(text))
	var want []string
	for _, c := range commands {
		want = append(want, c.name)
	}
	for _, cmd := range targetCommands {
		for _, f := range flagNames(t, cmd) {
			want = append(want, "--"+f)
		}
	}
	for _, e := range append(append([]contract.ExitCode{}, contract.ExitCodes...), contract.StatusCodes...) {
		want = append(want, e.Meaning[:min(len(e.Meaning), 20)])
	}
	want = append(want, contract.Events...)
	// A line that ends in a hyphen is joined to the next (whose
	// indentation goes): once without the hyphen, for a word that groff
	// hyphenated there, and once with it, for a hyphen of the text.
	flatten := func(joint string) string {
		return strings.Join(strings.Fields(hyphenBreak.ReplaceAllString(plain, joint)), " ")
	}
	hyphenated, kept := flatten(""), flatten("-")
	for _, w := range want {
		if !strings.Contains(hyphenated, w) && !strings.Contains(kept, w) {
			t.Errorf("the man page lacks %q", w)
		}
	}
}

// hyphenBreak is a hyphen at the end of a line of groff's output (-Tascii
// writes "-"; other devices U+2010), with the line break and the next
// line's indentation.
var hyphenBreak = regexp.MustCompile("[-\u2010]\n[ \t]*")

func stripOverstrike(s string) string {
	var b []rune
	for _, r := range s {
		if r == '\b' && len(b) > 0 {
			b = b[:len(b)-1]
			continue
		}
		b = append(b, r)
	}
	return string(b)
}

// TestStatusCodes: the state a status reports picks its code, and the
// codes stay apart from the error codes.
func TestStatusCodes(t *testing.T) {
	for _, tt := range []struct {
		state, by string
		held      bool
		want      int
	}{
		{"thawed", "", false, contract.StatusThawed},
		{"thawed", "", true, contract.StatusThawed},
		{"frozen", "cgfreeze", true, contract.StatusHeld},
		{"frozen", "cgfreeze", false, contract.StatusLeftover},
		{"frozen", "other", false, contract.StatusFrozenOther},
		{"freezing", "other", false, contract.StatusFreezing},
	} {
		if got := contract.StatusCode(tt.state, tt.by, tt.held); got != tt.want {
			t.Errorf("StatusCode(%q, %q, %v) = %d, want %d", tt.state, tt.by, tt.held, got, tt.want)
		}
	}
	last := contract.ExitCodes[len(contract.ExitCodes)-1].Code
	for _, s := range contract.StatusCodes {
		if s.Code <= last || s.Code < 20 {
			t.Errorf("status code %d is not above the error codes (up to %d) and 20", s.Code, last)
		}
	}
}

func TestWantsJSON(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, false}, {[]string{"-o", "json"}, true}, {[]string{"-ojson"}, true}, {[]string{"-o=json"}, true},
		{[]string{"--output", "json"}, true}, {[]string{"--output=json"}, true}, {[]string{"-o", "json", "-o", "text"}, false},
		{[]string{"--output=text"}, false}, {[]string{"-o"}, false}, {[]string{"--", "-o", "json"}, false}, {[]string{"--pid", "json"}, false},
	} {
		if got := wantsJSON(tt.args); got != tt.want {
			t.Errorf("wantsJSON(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
