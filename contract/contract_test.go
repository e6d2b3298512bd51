package contract

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
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

// declaredNames returns the values of the package's string constants
// whose names begin with prefix, read from its source: a constant added
// without a place in Events or the documentation is found too.
func declaredNames(t *testing.T, prefix string) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if i >= len(vs.Values) {
						continue // an implicit repetition (iota): no string literal
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !strings.HasPrefix(id.Name, prefix) || !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					names[id.Name] = v
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("no %s constants found in the package's source", prefix)
	}
	return names
}

// TestEventsComplete: Events has every event name the package declares,
// once.
func TestEventsComplete(t *testing.T) {
	listed := map[string]int{}
	for _, e := range Events {
		listed[e]++
	}
	for name, v := range declaredNames(t, "Event") {
		if listed[v] != 1 {
			t.Errorf("%s (%q) is in Events %d times, want once", name, v, listed[v])
		}
		delete(listed, v)
	}
	for v := range listed {
		t.Errorf("Events has %q, which no Event constant declares", v)
	}
}

// TestEventNamesDocumented: every event name and reason is in
// docs/usage.md.
func TestEventNamesDocumented(t *testing.T) {
	doc := usageDoc(t)
	for _, prefix := range []string{"Event", "Reason"} {
		for name, v := range declaredNames(t, prefix) {
			if !strings.Contains(doc, "`"+v+"`") {
				t.Errorf("%s (%q) is not in docs/usage.md", name, v)
			}
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
