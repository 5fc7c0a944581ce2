package layout

import (
	"fmt"
	"strconv"

	"laptop.org/upgrade/errdefs"
)

// Version is a release's number on its channel, as the signed index
// publishes it. It is the one form a version takes from a D-Bus caller to
// the boot pointer (docs/architecture.md), so that no layer converts it
// to text and back; 0 is no version, and in a request the newest.
type Version uint64

// String is the number in decimal and "" for none: the form of the D-Bus
// API, of upgradectl and of a slot's version file. ParseVersion reads it
// back.
func (v Version) String() string {
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(v), 10)
}

// ParseVersion reads "" (newest) or a version number written plainly: ASCII
// digits without a sign, blanks or leading zeros, as the index publishes
// it. " 3", "3\n" and "03" are errors: a caller that sends them has a bug
// that a lenient parser would hide.
func ParseVersion(v string) (Version, error) {
	if v == "" {
		return 0, nil
	}
	bad := v[0] == '0'
	for i := 0; i < len(v) && !bad; i++ {
		bad = v[i] < '0' || v[i] > '9'
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if bad || err != nil {
		return 0, fmt.Errorf("version %s: want a positive decimal number without blanks or leading zeros, or \"\" for the newest: %w", errdefs.Quote(v, 24), errdefs.ErrInvalidArgument)
	}
	return Version(n), nil
}
