package serve

import (
	"log"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"laptop.org/upgrade/daemon/worker"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
)

// EngineConfig builds the engine configuration the settings describe; logf
// receives the engine's log lines (nil: the standard logger).
func EngineConfig(s worker.Settings, logf func(string, ...any)) (*engine.Config, error) {
	lr, err := layout.New(s.Root)
	if err != nil {
		return nil, err
	}
	if logf == nil {
		logf = log.Printf
	}
	f := s.Fetch
	cfg := &engine.Config{
		Root: lr, Mirrors: s.Mirrors, Channel: s.Channel, Hardware: s.Hardware, Keys: s.Keys, TrustedRoot: s.TrustedRoot, Policy: s.Policy,
		Fetch: fetch.Options{Parallel: f.Parallel, StallTimeout: f.StallTimeout, Retries: f.Retries,
			RetryWaitMin: f.RetryWaitMin, RetryWaitMax: f.RetryWaitMax, MaxRate: f.MaxRate, MinRate: f.MinRate},
		Logf: logf,
	}
	if s.Proxy != "" {
		if cfg.Fetch.Proxy, err = ProxyFunc(s.Proxy); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// ProxyFunc is the config's `proxy =`: every http(s) mirror goes through
// it except hosts in no_proxy/NO_PROXY (names, .domains, IPs, CIDRs, "*"),
// loopback and link-local addresses (a proxy cannot reach our link's zone).
func ProxyFunc(proxy string) (func(*http.Request) (*url.URL, error), error) {
	u, err := worker.CheckProxy(proxy)
	if err != nil {
		return nil, err
	}
	np := os.Getenv("no_proxy")
	if np == "" {
		np = os.Getenv("NO_PROXY")
	}
	return func(r *http.Request) (*url.URL, error) {
		if Bypass(r.URL.Hostname(), np) {
			return nil, nil
		}
		return u, nil
	}, nil
}

// Bypass reports whether host is reached directly, not through the proxy,
// under the no_proxy list noProxy.
func Bypass(host, noProxy string) bool {
	if a, err := netip.ParseAddr(host); err == nil && (a.IsLoopback() || a.IsLinkLocalUnicast()) || host == "localhost" {
		return true
	}
	for _, e := range strings.Split(noProxy, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
		case e == "*":
			return true
		case strings.Contains(e, "/"):
			if p, err := netip.ParsePrefix(e); err == nil {
				if a, err := netip.ParseAddr(host); err == nil && p.Contains(a.WithZone("")) {
					return true
				}
			}
		default:
			if h, _, err := net.SplitHostPort(e); err == nil {
				e = h
			}
			e = strings.Trim(e, "[]")
			d := strings.TrimPrefix(e, ".")
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
	}
	return false
}
