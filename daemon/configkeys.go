package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/layout"
)

// configKey is one key of upgraded.conf. The parser, the reference page
// (docs/upgraded.conf.md, upgraded.conf(5)) and the installed example are
// all made from this one table, so none of them can miss a key.
type configKey struct {
	Name    string
	Value   string // what the value looks like
	Default string // as written in the file; "" = empty/none
	Doc     string
	set     func(c *FileConfig, v string) error
}

var configKeys = []configKey{
	{"mirror", "URL", "", "A mirror of the repository (`http://`, `https://` or `file://`), tried in the order given; repeat the key for more mirrors. IPv6 addresses go in brackets (`http://[fd42::1]:8080/`). A school cache is just the first mirror. A repository holds one channel, so `{channel}` in the URL (`http://[fd42::1]:8080/{channel}/`) stands for the channel followed: then switching channels needs no other change. Required: without a mirror nothing can be checked.",
		func(c *FileConfig, v string) error { c.Mirrors = append(c.Mirrors, v); return nil }},
	{"channel", "NAME", "stable", "The channel whose signed index is followed (`stable`, `beta`, ...). `upgradectl channel NAME` overrides it until `upgradectl channel \"\"`; each channel keeps its own anti-rollback serial.",
		func(c *FileConfig, v string) error {
			if !layout.ValidChannel(v) {
				return fmt.Errorf("want 1-64 of A-Z, a-z, 0-9, '.', '-', '_'")
			}
			c.Channel = v
			return nil
		}},
	{"hardware", "CLASS", "", "The hardware class of this machine; an index published for another class is refused (`Policy`). Empty accepts an index for any hardware.",
		func(c *FileConfig, v string) error { c.Hardware = v; return nil }},
	{"keys", "DIR", "/etc/upgrade/keys", "Directory of trusted publisher keys (`*.pub`), inside the root prefix. The security service reads its own copy.",
		func(c *FileConfig, v string) error { c.Keys = v; return nil }},
	{"tries", "N", "3", "Boots a new version gets to reach boot-complete before the initrd falls back to the previous slot. `upgradectl upgrade --tries N` overrides it for one job.",
		intKey(func(c *FileConfig) *int { return &c.Tries }, 1, 99)},
	{"parallel", "N", "4", "Concurrent downloads from the mirrors.",
		intKey(func(c *FileConfig) *int { return &c.Parallel }, 1, 64)},
	{"stall_timeout", "DURATION", "30s", "A connection that receives nothing for this long is dropped and the download moves on (Go duration: `45s`, `2m`).",
		func(c *FileConfig, v string) (err error) {
			c.StallTimeout, err = time.ParseDuration(v)
			if err == nil && c.StallTimeout <= 0 {
				err = fmt.Errorf("must be positive")
			}
			return err
		}},
	{"background_rate", "SIZE", "0", "Bandwidth cap of background jobs (the timer's), in bytes per second with an optional `k`, `M` or `G` suffix (binary units); `0` means no cap. Jobs an admin starts are never capped.",
		func(c *FileConfig, v string) (err error) { c.BackgroundBPS, err = parseBytes(v); return err }},
	{"min_battery", "PERCENT", "30", "Background jobs wait while the machine runs on a battery below this charge; `0` ignores the battery.",
		intKey(func(c *FileConfig) *int { return &c.MinBattery }, 0, 100)},
	{"allow_metered", "BOOL", "false", "Whether background jobs may download over a connection NetworkManager calls metered.",
		boolKey(func(c *FileConfig) *bool { return &c.AllowMetered })},
	{"allow_devices", "BOOL", "false", "Whether a published tree may hold device nodes (a normal root does not; `/dev` is a devtmpfs).",
		boolKey(func(c *FileConfig) *bool { return &c.AllowDevices })},
	{"proxy", "URL", "", "HTTP proxy for the mirrors, besides `$http_proxy`; `no_proxy` still applies, and loopback and link-local mirrors never go through a proxy.",
		func(c *FileConfig, v string) error { c.Proxy = v; return nil }},
}

func intKey(field func(*FileConfig) *int, lo, hi int) func(*FileConfig, string) error {
	return func(c *FileConfig, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

func boolKey(field func(*FileConfig) *bool) func(*FileConfig, string) error {
	return func(c *FileConfig, v string) (err error) { *field(c), err = strconv.ParseBool(v); return err }
}

func findKey(name string) *configKey {
	for i := range configKeys {
		if configKeys[i].Name == name {
			return &configKeys[i]
		}
	}
	return nil
}

const confIntro = `upgraded.conf is read by upgraded(8) at start and on SIGHUP (` + "`systemctl reload upgraded`" + `),
from ROOT/etc/upgrade/upgraded.conf (or ` + "`--config`" + `). Each line is ` + "`key = value`" + `; blank lines and lines
starting with ` + "`#`" + ` are ignored; ` + "`mirror`" + ` may be repeated, every other key is set once (the last wins).
An unknown key or a bad value is an error that names the line: a typo must not leave a machine without
updates silently. A missing file means every default. Flags of upgraded(8) override the file.
`

const confReload = `A reload applies mirror, channel, hardware, proxy, parallel, stall_timeout, allow_devices and tries
to the next check or job; a job already running finishes with the settings it started with. A file that does
not parse is refused as a whole and the settings in force stay (the journal says why). keys and the background
policy (background_rate, min_battery, allow_metered) are read at start only: ` + "`systemctl restart upgraded`" + `.
`

// ConfigReference is docs/upgraded.conf.md: every key with its default.
func ConfigReference() string {
	var b strings.Builder
	b.WriteString("# upgraded.conf: the upgrade daemon's configuration\n\n")
	b.WriteString("<!-- Generated from daemon/configkeys.go (go test ./daemon -update); do not edit. -->\n\n")
	b.WriteString(confIntro)
	b.WriteString("\n## Keys\n\n| key | value | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, k := range configKeys {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Name, k.Value, or(k.Default, "(none)"), k.Doc)
	}
	b.WriteString("\n## Reload\n\n" + confReload)
	b.WriteString("\n## Example\n\nThe installed example (`/etc/upgrade/upgraded.conf`, every key commented):\n\n```ini\n")
	b.WriteString(ConfigExample())
	b.WriteString("```\n")
	return b.String()
}

// ConfigManual is the same reference as a man page source (markdown for
// go-md2man): upgraded.conf(5).
func ConfigManual() string {
	var b strings.Builder
	b.WriteString("% UPGRADED.CONF 5\n\n# NAME\n\nupgraded.conf - configuration of the upgrade daemon\n\n")
	b.WriteString("# SYNOPSIS\n\n/etc/upgrade/upgraded.conf\n\n# DESCRIPTION\n\n" + confIntro + "\n# KEYS\n\n")
	for _, k := range configKeys {
		fmt.Fprintf(&b, "**%s** = *%s*\n:   %s Default: %s.\n\n", k.Name, k.Value, k.Doc, or(k.Default, "none"))
	}
	b.WriteString("# RELOAD\n\n" + confReload + "\n# EXAMPLE\n\n```\n" + ConfigExample() + "```\n\n# SEE ALSO\n\nupgraded(8), upgradectl(1), securityd(8)\n")
	return b.String()
}

// ConfigExample is the installed example: every key, commented out, at its
// default, with its meaning.
func ConfigExample() string {
	var b strings.Builder
	b.WriteString("# upgraded.conf: see upgraded.conf(5). Every key is shown at its default.\n")
	for _, k := range configKeys {
		b.WriteString("\n")
		for _, l := range wrap(k.Doc, 76) {
			b.WriteString("# " + l + "\n")
		}
		v := k.Default
		if k.Name == "mirror" {
			v = "http://[fd42::1]:8080/"
		}
		b.WriteString(strings.TrimRight(fmt.Sprintf("#%s = %s", k.Name, v), " ") + "\n")
	}
	return b.String()
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
