package jsonenc

import (
	"encoding/json"
	"math"
	"testing"
)

// samples covers every branch of AppendString: the escapes by name, the
// other control characters, the HTML ones, DEL (left as is), U+2028 and
// U+2029, invalid and truncated UTF-8, and multi-byte runes.
var samples = []string{
	"", "plain", `"quoted"`, `back\slash`, "\b\f\n\r\t", "\x00\x01\x1f", "<a href='x'>&amp;</a>", "\x7f",
	"line\u2028sep\u2029", "é€😀", "\xff", "a\xc3", "\xe2\x80", "\xed\xa0\x80", "/kubepods/pod 1/ctr", "\ufffd",
}

func TestAppendString(t *testing.T) {
	for _, s := range samples {
		checkString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(checkString)
}

func checkString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Errorf("AppendString(%q) = %s, want %s", s, got[1:], want)
	}
}

// floats covers both sides of the exponent cutoffs (1e-6, 1e21), the
// exponent's cleanup (e-07 -> e-7, but not e-10 or e+21), negative zero,
// the extremes, and the millisecond values events carry.
var floats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.5, 1.25, 3.141, 1000.001, 1e-6, 9.99999e-7, 1e-7, -1e-7, 1.5e-10, 1e-100,
	1e20, 1e21, -1e21, 123456789e20, 5e-324, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
	0.1 + 0.2, 12345678.901234, 1 << 53, 1<<53 + 1,
}

func TestAppendFloat(t *testing.T) {
	for _, f := range floats {
		checkFloat(t, f)
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, x := range floats {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Skip("no JSON form: the callers check for it")
		}
		checkFloat(t, x)
	})
}

func checkFloat(t *testing.T, f float64) {
	want, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendFloat([]byte("x"), f); string(got) != "x"+string(want) {
		t.Errorf("AppendFloat(%v) = %s, want %s", f, got[1:], want)
	}
}

// TestAppendStrings: arrays of the samples, as encoding/json writes a
// non-nil []string.
func TestAppendStrings(t *testing.T) {
	for _, ss := range [][]string{{}, {"one"}, samples} {
		want, err := json.Marshal(ss)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendStrings(nil, ss); string(got) != string(want) {
			t.Errorf("AppendStrings(%q) = %s, want %s", ss, got, want)
		}
	}
}
