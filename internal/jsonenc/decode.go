package jsonenc

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Reader reads the value of one member of a flat JSON object (Object):
// a string, an integer, a boolean or an array of strings. It reads what
// json.Unmarshal reads into a field of that type, to the same value
// (strings unescaped, invalid UTF-8 replaced by U+FFFD), and fails where
// json.Unmarshal fails; it is stricter in what it leaves out (null for a
// scalar, numbers with a fraction or an exponent, nested objects).
type Reader struct {
	s string
	i int
}

// ErrSyntax: the text is not a flat JSON object of the kinds Reader reads.
var ErrSyntax = errors.New("not a flat JSON object")

func (r *Reader) fail(what string) error {
	if r.i >= len(r.s) {
		return fmt.Errorf("%w: %s at the end", ErrSyntax, what)
	}
	return fmt.Errorf("%w: %s at offset %d (%q)", ErrSyntax, what, r.i, r.s[r.i])
}

func (r *Reader) space() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// literal consumes word (true, false, null) if it comes next.
func (r *Reader) literal(word string) bool {
	if len(r.s)-r.i >= len(word) && r.s[r.i:r.i+len(word)] == word {
		r.i += len(word)
		return true
	}
	return false
}

func (r *Reader) next(c byte) bool {
	r.space()
	if r.i < len(r.s) && r.s[r.i] == c {
		r.i++
		return true
	}
	return false
}

// Object reads s, one JSON object (or null, which has no members, as
// json.Unmarshal reads it into a struct) with white space around it, and
// calls member for each member in order, with r at its value, which
// member must read with one of r's methods. A later member of the same
// key overrides an earlier one, as with json.Unmarshal. member's error, or
// ErrSyntax, ends it.
func Object(s string, member func(key string, r *Reader) error) error {
	r := &Reader{s: s}
	r.space()
	if r.literal("null") {
		return r.end()
	}
	if !r.next('{') {
		return r.fail("want {")
	}
	if !r.next('}') {
		for {
			r.space()
			key, err := r.String()
			if err != nil {
				return err
			}
			if !r.next(':') {
				return r.fail("want :")
			}
			r.space()
			if err := member(key, r); err != nil {
				return err
			}
			if r.next('}') {
				break
			}
			if !r.next(',') {
				return r.fail("want , or }")
			}
		}
	}
	return r.end()
}

func (r *Reader) end() error {
	r.space()
	if r.i != len(r.s) {
		return r.fail("text after the object")
	}
	return nil
}

// Int reads an integer that fits in bits (a JSON number without fraction
// or exponent).
func (r *Reader) Int(bits int) (int64, error) {
	start := r.i
	if r.i < len(r.s) && r.s[r.i] == '-' {
		r.i++
	}
	digits := r.i
	for r.i < len(r.s) && '0' <= r.s[r.i] && r.s[r.i] <= '9' {
		r.i++
	}
	if r.i == digits || (r.s[digits] == '0' && r.i > digits+1) {
		r.i = start
		return 0, r.fail("want an integer")
	}
	n, err := strconv.ParseInt(r.s[start:r.i], 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	return n, nil
}

// Bool reads true or false.
func (r *Reader) Bool() (bool, error) {
	switch {
	case r.literal("true"):
		return true, nil
	case r.literal("false"):
		return false, nil
	}
	return false, r.fail("want true or false")
}

// Strings reads an array of strings, or null (nil); [] is an empty
// slice, not nil, as json.Unmarshal gives it.
func (r *Reader) Strings() ([]string, error) {
	if r.literal("null") {
		return nil, nil
	}
	if !r.next('[') {
		return nil, r.fail("want [")
	}
	list := []string{}
	if r.next(']') {
		return list, nil
	}
	for {
		r.space()
		s, err := r.String()
		if err != nil {
			return nil, err
		}
		list = append(list, s)
		if r.next(']') {
			return list, nil
		}
		if !r.next(',') {
			return nil, r.fail("want , or ]")
		}
	}
}

// String reads a JSON string, unescaped as json.Unmarshal does: the
// escapes of JSON only, a \u surrogate pair as one rune and an unpaired
// surrogate as U+FFFD, each byte of invalid UTF-8 as U+FFFD; a raw
// control character is an error.
func (r *Reader) String() (string, error) {
	if r.i >= len(r.s) || r.s[r.i] != '"' {
		return "", r.fail("want a string")
	}
	r.i++
	start := r.i
	// The common case: nothing to unescape or replace.
	for r.i < len(r.s) {
		c := r.s[r.i]
		if c == '"' {
			r.i++
			return r.s[start : r.i-1], nil
		}
		if c == '\\' || c < ' ' {
			break
		}
		if c < utf8.RuneSelf {
			r.i++
			continue
		}
		rr, size := utf8.DecodeRuneInString(r.s[r.i:])
		if rr == utf8.RuneError && size == 1 {
			break
		}
		r.i += size
	}
	b := []byte(r.s[start:r.i])
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			r.i++
			return string(b), nil
		case c < ' ':
			return "", r.fail("a control character in a string")
		case c == '\\':
			if r.i+1 >= len(r.s) {
				r.i++
				return "", r.fail("an unfinished escape")
			}
			e := r.s[r.i+1]
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := u4(r.s[r.i:])
				if rr < 0 {
					return "", r.fail(`a \u escape without 4 hex digits`)
				}
				r.i += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, u4(r.s[r.i:])); dec != utf8.RuneError {
						r.i += 6
						rr = dec
					} else {
						rr = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, rr)
				continue
			default:
				r.i++
				return "", r.fail("an unknown escape")
			}
			r.i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r.i++
		default:
			rr, size := utf8.DecodeRuneInString(r.s[r.i:])
			b = utf8.AppendRune(b, rr)
			r.i += size
		}
	}
	return "", r.fail("an unterminated string")
}

// u4 returns the rune of the \uXXXX escape that s begins with, or -1.
func u4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var n rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		n = n*16 + rune(c)
	}
	return n
}
