package dbusapi

import (
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/errdefs"
)

// UpgradeOptions are the a{sv} options of Upgrade, as plain values; the
// server turns them into a job's options.
type UpgradeOptions struct {
	Force        bool // ignore the background policy
	Background   bool // started by a timer: the background policy applies
	Tries        int  // boot tries for the new slot, 1 to 99 (0 = the daemon's default)
	DownloadOnly bool // stage the version without making it the next boot
}

// optionNames are the keys of Upgrade's options.
var optionNames = []string{"force", "background", "tries", "download_only"}

// ParseOptions validates the a{sv} options of Upgrade: unknown keys and
// wrong types are errors, not silently ignored.
func ParseOptions(opts map[string]dbus.Variant) (UpgradeOptions, error) {
	var o UpgradeOptions
	for k, v := range opts {
		switch k {
		case "force", "background", "download_only":
			b, ok := v.Value().(bool)
			if !ok {
				return o, fmt.Errorf("option %q must be a boolean (b), got %s: %w", k, v.Signature(), errdefs.ErrInvalidArgument)
			}
			switch k {
			case "force":
				o.Force = b
			case "background":
				o.Background = b
			default:
				o.DownloadOnly = b
			}
		case "tries":
			n, ok := v.Value().(uint32)
			if !ok || n == 0 || n > 99 {
				return o, fmt.Errorf("option \"tries\" must be a uint32 (u) from 1 to 99: %w", errdefs.ErrInvalidArgument)
			}
			o.Tries = int(n)
		default:
			return o, fmt.Errorf("unknown option %s (known: %s): %w", errdefs.Quote(k, 32), strings.Join(optionNames, ", "), errdefs.ErrInvalidArgument)
		}
	}
	return o, nil
}
