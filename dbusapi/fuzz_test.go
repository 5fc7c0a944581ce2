package dbusapi

import (
	"errors"
	"testing"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/errdefs"
)

// FuzzParseOptions builds a{sv} maps from fuzzed keys and typed values: the
// options of Upgrade come from any local caller. Seeds:
// testdata/fuzz/FuzzParseOptions.
func FuzzParseOptions(f *testing.F) {
	f.Add("tries", byte(2), "", uint64(3), false)
	f.Add("force", byte(0), "", uint64(0), true)
	f.Fuzz(func(t *testing.T, key string, kind byte, s string, n uint64, b bool) {
		var v dbus.Variant
		switch kind % 6 {
		case 0:
			v = dbus.MakeVariant(b)
		case 1:
			v = dbus.MakeVariant(s)
		case 2:
			v = dbus.MakeVariant(uint32(n))
		case 3:
			v = dbus.MakeVariant(int32(n))
		case 4:
			v = dbus.MakeVariant(n)
		default:
			v = dbus.MakeVariant([]string{s})
		}
		o, err := ParseOptions(map[string]dbus.Variant{key: v, "background": dbus.MakeVariant(b)})
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error without a class: %v", err)
			}
			return
		}
		if o.Tries < 0 || o.Tries > 99 {
			t.Fatalf("accepted tries %d", o.Tries)
		}
	})
}
