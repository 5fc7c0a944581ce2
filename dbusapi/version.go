package dbusapi

import (
	"fmt"
	"strconv"

	"laptop.org/upgrade/errdefs"
)

// ParseVersion reads "" (newest) or a version number written plainly: ASCII
// digits without a sign, blanks or leading zeros, as the index publishes
// it. " 3", "3\n" and "03" are errors: a caller that sends them has a bug
// that a lenient parser would hide.
func ParseVersion(v string) (uint64, error) {
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
	return n, nil
}
