//go:build linux

package freezer

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"reflect"
	"strings"
	"testing"
)

// TestStubMatchesLinux: the structs that other.go declares for the builds
// off Linux have the exported fields, with the same types, as this build's.
func TestStubMatchesLinux(t *testing.T) {
	real := map[string]reflect.Type{
		"Options": reflect.TypeFor[Options](), "Target": reflect.TypeFor[Target](), "Frozen": reflect.TypeFor[Frozen](),
		"Recovery": reflect.TypeFor[Recovery](), "Status": reflect.TypeFor[Status](), "HoldReport": reflect.TypeFor[HoldReport](),
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "other.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		typ := real[ts.Name.Name]
		if !ok || typ == nil {
			return true
		}
		seen[ts.Name.Name] = true
		var stub []string
		for _, fl := range st.Fields.List {
			var b strings.Builder
			_ = printer.Fprint(&b, fset, fl.Type)
			for _, name := range fl.Names {
				stub = append(stub, name.Name+" "+b.String())
			}
		}
		var want []string
		for i := range typ.NumField() {
			if fd := typ.Field(i); fd.IsExported() {
				want = append(want, fd.Name+" "+strings.ReplaceAll(fd.Type.String(), "freezer.", ""))
			}
		}
		if !reflect.DeepEqual(stub, want) {
			t.Errorf("other.go's %s has fields %q, the Linux build %q", ts.Name.Name, stub, want)
		}
		return true
	})
	for name := range real {
		if !seen[name] {
			t.Errorf("other.go does not declare %s", name)
		}
	}
}
