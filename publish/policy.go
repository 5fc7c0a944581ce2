package publish

import (
	"errors"
	"fmt"
	"strings"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
)

// maxListed bounds the entries an error names one by one (a debootstrap'd
// /dev holds dozens of nodes).
const maxListed = 20

// clientPolicy is what the clients accept: manifest.DefaultPolicy, which
// the engine and the security service apply when their config says nothing
// else, widened by AllowDevices for clients set up with allow_devices.
func (o *Options) clientPolicy() manifest.Policy {
	pol := manifest.DefaultPolicy
	if o.AllowDevices {
		pol.AllowDevices = true
	}
	return pol
}

// applyClientPolicy checks every entry of m with the clients' own check
// (manifest.Entry.Check), so a version that every client would refuse at
// "forbidden by policy" is never published. By default it refuses, naming
// the entries; with o.StripForbidden it leaves them out of the version.
func applyClientPolicy(m *manifest.Manifest, o *Options) error {
	pol := o.clientPolicy()
	var bad []string
	kept := m.Entries[:0:0]
	for i := range m.Entries {
		e := &m.Entries[i]
		err := e.Check(pol)
		switch {
		case errors.Is(err, errdefs.ErrPolicy):
			bad = append(bad, strings.TrimSuffix(err.Error(), ": "+errdefs.ErrPolicy.Error()))
			continue
		case err != nil:
			return err
		}
		kept = append(kept, *e)
	}
	if len(bad) == 0 {
		return nil
	}
	if o.StripForbidden {
		o.Logf("left out %d entries that clients refuse:%s", len(bad), listed(bad))
		m.Entries = kept
		return nil
	}
	return fmt.Errorf("%d entries that clients refuse (add --strip-forbidden to leave them out, or --allow-devices for clients with allow_devices = true): %w:%s",
		len(bad), errdefs.ErrPolicy, listed(bad))
}

// listed puts each entry on a line of its own, for a person to read.
func listed(bad []string) string {
	more := ""
	if len(bad) > maxListed {
		bad, more = bad[:maxListed], fmt.Sprintf("\n  ... and %d more", len(bad)-maxListed)
	}
	return "\n  " + strings.Join(bad, "\n  ") + more
}
