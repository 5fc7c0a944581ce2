package testbus

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// systemConf is the distribution's system bus configuration. The test bus
// starts from it rather than from a hand-written file so that its default
// policy (deny own, deny method calls, allow replies and signals) is the one
// the daemon meets in production.
const systemConf = "/usr/share/dbus-1/system.conf"

// polkitConf is polkitd's own policy; included when present so that polkitd
// can own org.freedesktop.PolicyKit1 and anyone can ask it.
const polkitConf = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf"

// dropped are the top-level elements of system.conf that tie a bus to the
// machine: the daemon's user and pid file, syslog, the setuid activation
// helper (which only reads the fixed system directories), the machine's
// socket, and every include of machine-wide policy. Without them the bus is
// private to the test but keeps the system bus's semantics.
var dropped = map[string]bool{
	"user":                        true,
	"fork":                        true,
	"pidfile":                     true,
	"syslog":                      true,
	"servicehelper":               true,
	"standard_system_servicedirs": true,
	"listen":                      true,
	"include":                     true,
	"includedir":                  true,
}

// busConfig holds what the test bus adds to the rewritten system.conf.
type busConfig struct {
	socket     string // path of the unix socket to listen on
	serviceDir string // directory of activatable .service files
	policyDir  string // directory with the project's policy files
}

// rewriteSystemConf turns a system.conf into the test bus's configuration.
// It works on XML tokens, not text, so comments and formatting of the source
// cannot fool it, and it fails if the result would not behave like a system
// bus (a changed upstream file must be noticed, not silently weakened).
func rewriteSystemConf(src []byte, c busConfig) ([]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(src))
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	var (
		depth                               int
		sawSystem, sawExternal, sawAllowAll bool
		closed                              bool
		text                                strings.Builder
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", systemConf, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && dropped[t.Name.Local] {
				if err := dec.Skip(); err != nil {
					return nil, fmt.Errorf("parse %s: %w", systemConf, err)
				}
				depth--
				continue
			}
			text.Reset()
			if t.Name.Local == "allow" && attr(t, "user") == "*" {
				sawAllowAll = true
			}
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			depth--
			switch {
			case t.Name.Local == "type" && strings.TrimSpace(text.String()) == "system":
				sawSystem = true
			case t.Name.Local == "auth" && strings.TrimSpace(text.String()) == "EXTERNAL":
				sawExternal = true
			}
			if depth == 0 && t.Name.Local == "busconfig" {
				// Our elements go last: later policy overrides earlier.
				closed = true
				continue
			}
		}
		if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
			return nil, fmt.Errorf("rewrite %s: %w", systemConf, err)
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	if !closed || !sawSystem || !sawExternal || !sawAllowAll {
		return nil, fmt.Errorf("%s no longer looks like a system bus config (busconfig %v, type system %v, auth EXTERNAL %v, allow user=* %v)",
			systemConf, closed, sawSystem, sawExternal, sawAllowAll)
	}
	fmt.Fprintf(&out, "\n  <listen>unix:path=%s</listen>\n", escape(c.socket))
	fmt.Fprintf(&out, "  <servicedir>%s</servicedir>\n", escape(c.serviceDir))
	fmt.Fprintf(&out, "  <include ignore_missing=\"yes\">%s</include>\n", escape(polkitConf))
	fmt.Fprintf(&out, "  <includedir>%s</includedir>\n", escape(c.policyDir))
	out.WriteString("</busconfig>\n")
	return out.Bytes(), nil
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// writeBusConfig writes the test bus's configuration to path.
func writeBusConfig(path string, c busConfig) error {
	src, err := os.ReadFile(systemConf)
	if err != nil {
		return fmt.Errorf("read system bus config (is dbus-system-bus-common installed?): %w", err)
	}
	conf, err := rewriteSystemConf(src, c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, conf, 0o644)
}
