package dbusapi

import (
	"errors"
	"strconv"
	"testing"

	"laptop.org/upgrade/errdefs"
)

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
		if err == nil && s != "" && strconv.FormatUint(n, 10) != s {
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
