package initrd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/layout"
)

// Cmdline is what /init takes from the kernel command line. Only the
// parameters the root mount and the slot choice need; everything else
// belongs to the kernel or to the real init and is ignored here.
type Cmdline struct {
	Root       string        // root=: /dev/vda1, LABEL=x, UUID=x, PARTUUID=x
	RootFSType string        // rootfstype=; "" means detect
	RootFlags  string        // rootflags=: data string for mount(2)
	ReadOnly   bool          // ro (rw clears it): remount the root read-only before switching
	RootWait   bool          // rootwait: wait longer for a slow root device
	RootDelay  time.Duration // rootdelay=N seconds: the bound on the device wait
	Init       string        // init=: the real init; "" means the default list
	Slot       layout.Slot   // upgrade.slot=a|b: this boot only; kept raw so Decide can say why it ignored a bad value
	InitArgs   []string      // words after "--", passed to the real init
	Timing     bool          // upgrade.timing: print each step's and module's time (make bench-initrd)
	// KexecSlot and KexecRelease are the mark upgrade.kexec=SLOT:RELEASE that
	// /init adds when it kexecs a slot's kernel (kexec.go): this start comes
	// from that kexec, the slot is already chosen and its try already paid.
	KexecSlot    layout.Slot
	KexecRelease string
}

// Wait returns how long /init waits for the root device. The kernel's
// rootwait waits forever; PID 1 in an A/B system must not (a machine that
// never reboots never falls back), so every wait is bounded.
func (c Cmdline) Wait() time.Duration {
	switch {
	case c.RootDelay > 0:
		return c.RootDelay
	case c.RootWait:
		return 30 * time.Second
	default:
		return 5 * time.Second
	}
}

// ParseCmdline parses the contents of /proc/cmdline. It is pure and never
// fails on unknown or malformed parameters (a typo must not stop the boot):
// the kernel's own rules apply — whitespace separates words, double quotes
// group them, the last occurrence of a key wins, and "--" ends the kernel's
// parameters. A malformed rootdelay= is ignored.
func ParseCmdline(s string) Cmdline {
	var c Cmdline
	words := splitCmdline(s)
	for i, w := range words {
		if w == "--" {
			c.InitArgs = append([]string(nil), words[i+1:]...)
			break
		}
		key, val, hasVal := strings.Cut(w, "=")
		switch key {
		case "root":
			c.Root = val
		case "rootfstype":
			c.RootFSType = val
		case "rootflags":
			c.RootFlags = val
		case "ro":
			if !hasVal {
				c.ReadOnly = true
			}
		case "rw":
			if !hasVal {
				c.ReadOnly = false
			}
		case "rootwait":
			if !hasVal {
				c.RootWait = true
			}
		case "rootdelay":
			if n, err := strconv.ParseUint(val, 10, 16); err == nil {
				c.RootDelay = time.Duration(n) * time.Second
			}
		case "init":
			c.Init = val
		case "upgrade.slot":
			c.Slot = layout.Slot(val)
		case "upgrade.kexec":
			sl, rel, _ := strings.Cut(val, ":")
			c.KexecSlot, c.KexecRelease = layout.Slot(sl), rel
		case "upgrade.timing":
			c.Timing = !hasVal || val == "1"
		}
	}
	return c
}

// splitCmdline splits on spaces, tabs and newlines outside double quotes and
// drops the quotes, as the kernel's next_arg does.
func splitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (ch == ' ' || ch == '\t' || ch == '\n' || ch == 0):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// RootSpec is a parsed root= value.
type RootSpec struct {
	Kind  string // "path", "LABEL", "UUID" or "PARTUUID"
	Value string
}

func (r RootSpec) String() string {
	if r.Kind == "path" {
		return r.Value
	}
	return r.Kind + "=" + r.Value
}

// ParseRoot classifies a root= value. Anything that is not a /dev path or one
// of the three tags is refused, so the console says what was wrong instead
// of waiting for a device that cannot appear.
func ParseRoot(s string) (RootSpec, error) {
	if strings.HasPrefix(s, "/dev/") && len(s) > len("/dev/") {
		return RootSpec{Kind: "path", Value: s}, nil
	}
	for _, k := range []string{"LABEL", "UUID", "PARTUUID"} {
		if v, ok := strings.CutPrefix(s, k+"="); ok && v != "" {
			return RootSpec{Kind: k, Value: v}, nil
		}
	}
	if s == "" {
		return RootSpec{}, fmt.Errorf("no root= on the kernel command line")
	}
	return RootSpec{}, fmt.Errorf("root=%q: want /dev/..., LABEL=, UUID= or PARTUUID=", s)
}
