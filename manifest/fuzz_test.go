package manifest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"laptop.org/upgrade/errdefs"
)

// FuzzDecodePolicies feeds arbitrary bytes to the manifest decoder, the first
// defence against a hostile repository: it must never panic, every error
// must carry a class, and whatever it accepts must be a valid tree whose
// every path is safe and which survives an encode/decode round trip.
// Seeds: testdata/fuzz/FuzzDecodePolicies. (FuzzDecode in
// manifest_test.go checks the round trip under one policy without error classes.)
func FuzzDecodePolicies(f *testing.F) {
	f.Add([]byte(`{"type":"manifest","spec":1,"channel":"stable","version":1,"created":"2026-01-01T00:00:00Z","entries":2}
{"p":"usr","t":"d","m":493,"u":0,"g":0}
{"p":"usr/x","t":"f","m":420,"u":0,"g":0,"s":1,"h":"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}
`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, pol := range []Policy{DefaultPolicy, {AllowSetuid: true, AllowDevices: true, MaxEntries: 1000}} {
			m, err := Decode(b, pol)
			if err != nil {
				if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrUnsafePath) &&
					!errors.Is(err, errdefs.ErrPolicy) && !errors.Is(err, errdefs.ErrTooLarge) {
					t.Fatalf("error without a class: %v", err)
				}
				continue
			}
			for i := range m.Entries {
				if err := CheckPath(m.Entries[i].Path); err != nil {
					t.Fatalf("accepted unsafe path: %v", err)
				}
			}
			again, err := Decode(m.Bytes(), pol)
			if err != nil {
				t.Fatalf("re-encoded manifest does not decode: %v", err)
			}
			if diff := cmp.Diff(m, again, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("round trip (-first +second):\n%s", diff)
			}
		}
	})
}
