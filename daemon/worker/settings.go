package worker

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo"
)

// Settings are the daemon's engine settings as plain data: they cross the
// pipe to the worker, which builds its engine.Config from them. A worker
// therefore runs with what the daemon holds (its keys read at start, a
// reload applied or not), never with a config file changed since.
type Settings struct {
	Root     string       `json:"root"`
	Mirrors  []string     `json:"mirrors"` // channel token already expanded
	Channel  string       `json:"channel"`
	Hardware string       `json:"hardware,omitempty"`
	Keys     repo.Keyring `json:"keys"`
	// TrustedRoot is the TUF root shipped with the OS (engine.Config).
	TrustedRoot []byte           `json:"trusted_root,omitempty"`
	Policy      *manifest.Policy `json:"policy,omitempty"` // nil: manifest.DefaultPolicy
	Fetch       FetchSettings    `json:"fetch"`
	// Proxy is the config's `proxy =` (see ProxyFunc); "" uses the
	// environment's.
	Proxy string `json:"proxy,omitempty"`
}

// FetchSettings are fetch.Options without its functions.
type FetchSettings struct {
	Parallel     int           `json:"parallel,omitempty"`
	StallTimeout time.Duration `json:"stall_timeout,omitempty"`
	Retries      int           `json:"retries,omitempty"`
	RetryWaitMin time.Duration `json:"retry_wait_min,omitempty"`
	RetryWaitMax time.Duration `json:"retry_wait_max,omitempty"`
	MaxRate      int64         `json:"max_rate,omitempty"`
	MinRate      int64         `json:"min_rate,omitempty"`
}

// Engine builds the engine configuration the settings describe; logf
// receives the engine's log lines (nil: the standard logger).
func (s Settings) Engine(logf func(string, ...any)) (*engine.Config, error) {
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
	u, err := url.Parse(proxy)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("proxy %q: want http://host:port", proxy)
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
