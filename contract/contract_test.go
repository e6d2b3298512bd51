package contract

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func usageDoc(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "usage.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// TestEventFieldsDocumented: every field an event can carry has a row in
// the field table of docs/usage.md.
func TestEventFieldsDocumented(t *testing.T) {
	doc := usageDoc(t)
	typ := reflect.TypeFor[Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(doc, "\n| `"+name+"` |") {
			t.Errorf("event field %q has no row in the field table of docs/usage.md", name)
		}
	}
}

// TestEventNamesDocumented: every event name and reason is in
// docs/usage.md.
func TestEventNamesDocumented(t *testing.T) {
	doc := usageDoc(t)
	for _, name := range []string{EventFrozen, EventConnectionsDropped, EventRepaired, EventViolation, EventThawed,
		EventEnded, EventOutputOverflow, EventError, EventStatus, EventRecovered, EventNothingToThaw,
		ReasonSignal, ReasonDuration, ReasonStdin, ReasonParent, ReasonOutputClosed, ReasonSupervisorGone,
		ReasonTargetGone, ReasonThawedByOther, ReasonWatchdog, ReasonLeftover} {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("%q is not in docs/usage.md", name)
		}
	}
}

// TestExitCodesDocumented: the exit code table of docs/usage.md has
// exactly the codes of ExitCodes, in order.
func TestExitCodesDocumented(t *testing.T) {
	doc := usageDoc(t)
	_, table, ok := strings.Cut(doc, "## Exit codes\n")
	if !ok {
		t.Fatal("docs/usage.md has no Exit codes section")
	}
	var rows []string
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(table, -1) {
		rows = append(rows, m[1])
	}
	var want []string
	for i, c := range ExitCodes {
		if i > 0 && c.Code <= ExitCodes[i-1].Code {
			t.Errorf("ExitCodes is not in order at %d", c.Code)
		}
		want = append(want, fmt.Sprint(c.Code))
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("docs/usage.md lists exit codes %q, want %q", rows, want)
	}
}

// TestStatusCodesDocumented: the status code table of docs/usage.md has
// exactly the codes of StatusCodes, in order.
func TestStatusCodesDocumented(t *testing.T) {
	doc := usageDoc(t)
	_, table, ok := strings.Cut(doc, "## Status codes\n")
	if !ok {
		t.Fatal("docs/usage.md has no Status codes section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	var rows, want []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(\\d+)` \\|").FindAllStringSubmatch(table, -1) {
		rows = append(rows, m[1])
	}
	for _, c := range StatusCodes {
		want = append(want, fmt.Sprint(c.Code))
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("docs/usage.md lists status codes %q, want %q", rows, want)
	}
}
