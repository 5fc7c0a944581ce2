package security

import "laptop.org/upgrade/layout"

// SetBeforeRecheck installs the hook between verification and recheck.
func SetBeforeRecheck(f func(layout.Slot)) { beforeRecheck = f }
