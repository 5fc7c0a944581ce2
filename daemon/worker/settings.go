package worker

import (
	"fmt"
	"net/url"
	"time"

	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/repo/sigkey"
)

// Settings are the daemon's engine settings as plain data: they cross the
// pipe to the worker, which builds its engine.Config from them
// (serve.EngineConfig). A worker therefore runs with what the daemon holds
// (its keys read at start, a reload applied or not), never with a config
// file changed since.
type Settings struct {
	Root     string         `json:"root"`
	Mirrors  []string       `json:"mirrors"` // channel token already expanded
	Channel  string         `json:"channel"`
	Hardware string         `json:"hardware,omitempty"`
	Keys     sigkey.Keyring `json:"keys"`
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

// CheckProxy parses the config's `proxy =`: an http or https URL with a
// host. The worker applies it (serve.ProxyFunc); the daemon checks it when
// it reads the config, so that a bad value fails at start, not in a job.
func CheckProxy(proxy string) (*url.URL, error) {
	u, err := url.Parse(proxy)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("proxy %q: want http://host:port", proxy)
	}
	return u, nil
}
