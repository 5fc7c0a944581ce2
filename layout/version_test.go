package layout

import (
	"errors"
	"strings"
	"testing"

	"laptop.org/upgrade/errdefs"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		ok   bool
	}{
		{"", 0, true}, {"7", 7, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"0", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"2.0", 0, false}, {"latest", 0, false}, {"18446744073709551616", 0, false},
		{" 3", 0, false}, {"3\n", 0, false}, {"03", 0, false}, {" 7 ", 0, false}, {"\u00a0", 0, false}, {" ", 0, false},
		{strings.Repeat(" ", 1<<20) + "3", 0, false},
	} {
		got, err := ParseVersion(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseVersion(%.40q) = %d, %.200v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseVersion(%.40q): %v is not InvalidArgument", tc.in, err)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("ParseVersion(%.40q): the error echoes the input: %d bytes", tc.in, len(err.Error()))
		}
	}
}

// TestVersionString: String and ParseVersion are inverses, "" being none.
func TestVersionString(t *testing.T) {
	for _, v := range []Version{0, 1, 7, 42, 1<<64 - 1} {
		back, err := ParseVersion(v.String())
		if err != nil || back != v {
			t.Errorf("ParseVersion(%q) = %d, %v; want %d", v.String(), back, err, uint64(v))
		}
	}
}

// FuzzParseVersion: any string from a D-Bus caller gives a version or an
// InvalidArgs-class error. Seeds: testdata/fuzz/FuzzParseVersion.
func FuzzParseVersion(f *testing.F) {
	f.Add("")
	f.Add("42")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseVersion(s)
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("error without a class: %v", err)
		}
		// Strict: what parses is exactly the number written plainly.
		if err == nil && s != "" && n.String() != s {
			t.Fatalf("%q parsed as %d", s, n)
		}
		if err == nil && s == "" && n != 0 {
			t.Fatalf(`"" parsed as %d, want 0 (newest)`, n)
		}
		if err != nil && len(err.Error()) > 256 {
			t.Fatalf("the error echoes the input: %d bytes", len(err.Error()))
		}
	})
}
