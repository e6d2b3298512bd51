package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The terminal view of a hold, in a real terminal: tmux runs cgfreeze in a
// pane of its own server (its own socket: no other tmux is touched),
// send-keys types Enter and Ctrl-C, resize-window sends SIGWINCH (as
// kubectl attach does when it attaches with a TTY), capture-pane reads the
// screen. The events go to a file, and must stay JSON lines.

// paneDeadline bounds each wait for the screen to show something: a
// repaint follows its cause at once, the status line once a second.
const paneDeadline = 5 * time.Second

type pane struct {
	t      *testing.T
	tmux   string
	socket string
}

func (p *pane) cmd(args ...string) string {
	p.t.Helper()
	out, err := exec.Command(p.tmux, append([]string{"-L", p.socket}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %q: %v: %s", args, err, out)
	}
	return string(out)
}

func (p *pane) screen() string {
	p.t.Helper()
	return p.cmd("capture-pane", "-p", "-J", "-S", "-200", "-t", "hold")
}

// wait waits until the screen satisfies ok, and returns it.
func (p *pane) wait(what string, ok func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(paneDeadline)
	for {
		s := p.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the terminal did not show %s within %v; it shows:\n%s", what, paneDeadline, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// TestTerminalHold: in a terminal, a hold shows what it froze and how to
// thaw, a status line that counts the seconds and the deadline, paints it
// all again on Enter and on a resize, thaws on Ctrl-C and says so; the
// events on stdout (a file) stay JSON without a control character.
func TestTerminalHold(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatalf("tmux is needed (apt-get install tmux): %v", err)
	}
	for _, k := range []kind{kindDirect, kindSubtree} {
		t.Run(string(k), func(t *testing.T) {
			h := newHarness(t)
			tg := h.newTarget(k, targetOpts{})
			before := h.snapshot(tg.cg)
			dir := t.TempDir()
			events := filepath.Join(dir, "events.json")
			p := &pane{t: t, tmux: tmux, socket: fmt.Sprintf("cgfreeze-itest-%d-%s", os.Getpid(), k)}
			// The shell traps SIGINT (a handler, which its child does not
			// inherit, unlike an ignored signal) so that it outlives
			// Ctrl-C and prints cgfreeze's exit code.
			shell := "trap true INT; " + shellQuote(tg.argv("", "--duration", "60s")) + " >" + events + "; echo EXIT=$?"
			// The pane stays after its command ends (remain-on-exit), so
			// that the last screen can be read: it is set on a placeholder
			// that the command then replaces.
			p.cmd("-f", "/dev/null", "new-session", "-d", "-s", "hold", "-x", "150", "-y", "40", "sleep 600")
			t.Cleanup(func() { _ = exec.Command(tmux, "-L", p.socket, "kill-server").Run() })
			p.cmd("set-option", "-t", "hold", "remain-on-exit", "on")
			p.cmd("respawn-pane", "-k", "-t", "hold", shell)

			headers := func(n int) func(string) bool {
				return func(s string) bool { return strings.Count(s, "cgfreeze: FROZEN ") >= n }
			}
			s := p.wait("the view of the hold", headers(1))
			for _, want := range []string{"cgroup v2, strategy " + strategyOf(k), "To thaw: press Ctrl-C (or kill -TERM ", "Thaws by itself at ", "(--duration 1m0s)"} {
				if !strings.Contains(s, want) {
					t.Errorf("the view lacks %q:\n%s", want, s)
				}
			}
			tg.requireFrozen("with the view on the terminal")
			// The status line counts: frozen for 2s, the deadline 58s away.
			s = p.wait("the status line after 2 s", func(s string) bool {
				return regexp.MustCompile(`frozen for [2-9]s · \d+ process(es)? · thaws in 5[0-8]s`).MatchString(s)
			})
			if strings.Count(s, "frozen for ") != 1 {
				t.Errorf("the status line is not repainted in place:\n%s", s)
			}
			// Enter paints the view again; so does a resize (SIGWINCH).
			p.cmd("send-keys", "-t", "hold", "Enter")
			p.wait("the view again after Enter", headers(2))
			p.cmd("resize-window", "-t", "hold", "-x", "120", "-y", "40")
			p.wait("the view again after a resize", headers(3))
			tg.requireFrozen("after the repaints")

			p.cmd("send-keys", "-t", "hold", "C-c")
			s = p.wait("the end", func(s string) bool { return strings.Contains(s, "EXIT=") })
			// For subtree, the test's stand-in for an ephemeral container
			// (nsenter, which forks into the target's PID namespace) dies
			// of the SIGINT at once and the pane goes with it: cgfreeze
			// thaws all the same (the events say so), but the screen ends
			// first. Directly, the screen shows the thaw and exit 0.
			if k == kindDirect && (!regexp.MustCompile(`cgfreeze: thawed after \d+s \(signal interrupt\): the processes run again\.`).MatchString(s) || !strings.Contains(s, "EXIT=0")) {
				t.Errorf("after Ctrl-C the terminal shows:\n%s\nwant the thaw and EXIT=0", s)
			}
			deadline := time.Now().Add(paneDeadline)
			for {
				b, _ := os.ReadFile(events)
				if strings.Contains(string(b), `"event":"thawed"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no thawed event within %v of Ctrl-C: %q", paneDeadline, b)
				}
				time.Sleep(20 * time.Millisecond)
			}
			h.requireProgress("after Ctrl-C", tg.w)
			h.requireSameCgroups("after Ctrl-C", before, tg.w.pid)

			out, err := os.ReadFile(events)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var e struct {
					Event, Reason string
				}
				if err := json.Unmarshal([]byte(l), &e); err != nil || strings.ContainsAny(l, "\x1b\r") {
					t.Errorf("stdout line %q is not a plain JSON event (%v)", l, err)
				}
				names = append(names, e.Event+"/"+e.Reason)
			}
			if strings.Join(names, " ") != "frozen/ holding/ thawed/signal" {
				t.Errorf("events %q, want frozen, holding, thawed (signal)", names)
			}
			h.checkLeftovers()
		})
	}
}

func strategyOf(k kind) string {
	if k == kindSubtree {
		return "subtree"
	}
	return "direct"
}

// TestNoViewWithoutTerminal: with stderr and stdout not terminals, a hold
// writes nothing of the view: no control character anywhere.
func TestNoViewWithoutTerminal(t *testing.T) {
	h := newHarness(t)
	tg := h.newTarget(kindDirect, targetOpts{})
	r := tg.start("", "--duration", "1500ms")
	r.waitEvent("frozen")
	r.waitEvent("thawed")
	if code := r.wait(); code != 0 {
		t.Fatalf("exit %d: %s", code, r.describe())
	}
	errb, err := os.ReadFile(r.stderr)
	if err != nil {
		t.Fatal(err)
	}
	// describe quotes the events: a control character in one reads \x1b.
	all := r.describe() + string(errb)
	if strings.ContainsAny(all, "\x1b\r") || strings.Contains(all, `\x1b`) || strings.Contains(all, "FROZEN") || strings.Contains(all, "frozen for") {
		t.Errorf("a hold without a terminal painted the view:\n%s", strconv.Quote(all))
	}
	h.checkLeftovers()
}
