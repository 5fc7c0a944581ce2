// Package mirror parses the base URL of a repository mirror. Both the
// downloader (fetch) and the daemon's route check (netmon) read mirror
// URLs; the daemon links this without linking the downloader.
package mirror

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"laptop.org/upgrade/errdefs"
)

// Parse validates a mirror base URL and returns it with a trailing
// slash on its path. Accepted: http and https with a host (IPv6 literals;
// a zone only on link-local addresses), and file with an absolute path and
// no host. Query, fragment and user info are rejected: a base URL is only a
// place. Errors wrap ErrInvalidArgument.
func Parse(s string) (*url.URL, error) {
	bad := func(why string) (*url.URL, error) {
		return nil, fmt.Errorf("mirror %q: %s: %w", s, why, errdefs.ErrInvalidArgument)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad(err.Error())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#") {
		return bad("query or fragment")
	}
	if u.User != nil {
		return bad("user info")
	}
	if u.Opaque != "" {
		return bad("not a hierarchical URL")
	}
	switch u.Scheme {
	case "http", "https":
		if err := checkHost(u); err != nil {
			return bad(err.Error())
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad("file URL with a host")
		}
		u.Host = ""
		if !strings.HasPrefix(u.Path, "/") {
			return bad("file URL needs an absolute path")
		}
	default:
		return bad("scheme must be http, https or file")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == ".." || seg == "." {
			return bad("dot segment in path")
		}
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u, nil
}

// checkHost validates the host and port of an http(s) mirror.
func checkHost(u *url.URL) error {
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("empty port")
	}
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Is4In6() {
			return fmt.Errorf("bad IPv6 literal %q", host)
		}
		if a.Zone() != "" && !a.IsLinkLocalUnicast() && !a.IsLinkLocalMulticast() {
			return fmt.Errorf("zone on a non-link-local address %q", host)
		}
		if z := a.Zone(); z != "" && !validZone(z) {
			return fmt.Errorf("bad zone %q", z)
		}
		if a.IsLinkLocalUnicast() && a.Zone() == "" {
			return fmt.Errorf("link-local address %q needs a zone (%%25eth0)", host)
		}
		return nil
	}
	if strings.ContainsAny(host, "%[]") {
		return fmt.Errorf("bad host %q", host)
	}
	return nil
}

// validZone accepts an interface name or index as Linux allows it: at most
// 15 bytes, printable, no '/', ':', '%' or space.
func validZone(z string) bool {
	if len(z) > 15 {
		return false
	}
	for i := 0; i < len(z); i++ {
		if c := z[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("/:%", c) >= 0 {
			return false
		}
	}
	return true
}
