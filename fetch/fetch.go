// Package fetch downloads content-addressed blobs from a static repository
// over HTTP(S) or file://, resumably, verifying them while they stream.
//
// It exists because the repository is served by anything (nginx, a school
// cache, a CDN, a USB stick) and every one of those may cut a connection,
// ignore Range, stall, or lie. The signed metadata tells us each blob's exact
// size and SHA-256, so fetch never trusts a mirror: it reads at most the signed
// size (+1 byte to detect an overrun), hashes as it writes, and names a file by
// its digest only after size and digest check and syncfs (a batch at a time),
// then renames and fsyncs the directory. In-progress bytes survive kill -9 and are rehashed to resume.
//
// fetch must never publish a file under its final name before it is verified,
// never read more than signed metadata allows, and never let one mirror's bad
// bytes stop a good mirror from serving the blob.
package fetch

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/mirror"
)

// Blob is one file of the repository as described by signed metadata.
type Blob struct {
	Path   string        // repo-relative path, e.g. "objects/ab/abcd….zst"
	Size   int64         // exact stored size; more bytes is ErrTooLarge
	SHA256 digest.Digest // digest of the stored bytes
}

// Options configures a Fetcher. The zero value of every field but Mirrors is
// a usable default.
type Options struct {
	// Mirrors are base URLs tried in order: http, https or file. IPv6
	// literals are allowed, link-local ones with a zone ("[fe80::1%25eth0]").
	Mirrors []string
	// Parallel bounds concurrent requests (default 4).
	Parallel int
	// StallTimeout aborts an attempt when no byte (nor the response headers)
	// arrived for this long (default 30s).
	StallTimeout time.Duration
	// Retries per mirror per blob after the first attempt (default 3; <0: none).
	// An attempt that made progress does not use up a retry.
	Retries int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts (defaults 1s and 30s); a server's Retry-After is capped by the max.
	RetryWaitMin, RetryWaitMax time.Duration
	// Progress is called from any goroutine with bytes on disk so far
	// (resumed partials included) and the total size of the blobs that were
	// not final when Fetch started. done goes back when bad bytes are thrown
	// away to fetch a blob again.
	Progress func(done, total int64)
	// Proxy selects a proxy (default http.ProxyFromEnvironment).
	Proxy func(*http.Request) (*url.URL, error)
	// UserAgent is sent with every request (default "laptop.org-upgrade-fetch").
	UserAgent string
	// Logf receives one line per retry, failover and resume (optional).
	Logf func(format string, args ...any)
	// MaxRate caps bytes per second across the Fetcher (0 = unlimited).
	MaxRate int64
	// MinRate is the floor, in bytes per second averaged over each
	// StallTimeout, below which an HTTP attempt is cut off like a stalled
	// one (default 512; <0: none). The stall timer alone is kicked by any
	// byte: a mirror (or a box in the path) dripping one byte every 29 s
	// would hold a download for ever. 512 B/s is far below any link a
	// school has (a 2G modem does ~5 KB/s) and above a deliberate drip.
	MinRate int64
}

// Fetcher downloads blobs from a fixed list of mirrors. It is safe for
// concurrent use.
type Fetcher struct {
	o       Options
	mirrors []*url.URL
	client  *http.Client
	limit   *limiter // nil when unlimited
	sem     chan struct{}

	received atomic.Int64
	// down marks mirrors whose last blob failed for network reasons; they are
	// tried after the healthy ones so that one dead mirror does not cost every
	// blob its retries and backoff.
	down []atomic.Bool
}

// New checks the options and builds a Fetcher. Errors wrap ErrInvalidArgument.
func New(o Options) (*Fetcher, error) {
	if len(o.Mirrors) == 0 {
		return nil, fmt.Errorf("fetch: no mirrors: %w", errdefs.ErrInvalidArgument)
	}
	f := &Fetcher{o: o}
	for _, m := range o.Mirrors {
		u, err := mirror.Parse(m)
		if err != nil {
			return nil, err
		}
		f.mirrors = append(f.mirrors, u)
	}
	f.down = make([]atomic.Bool, len(f.mirrors))
	if f.o.Parallel <= 0 {
		f.o.Parallel = 4
	}
	if f.o.StallTimeout <= 0 {
		f.o.StallTimeout = 30 * time.Second
	}
	if f.o.MinRate == 0 {
		f.o.MinRate = 512
	}
	switch {
	case f.o.Retries == 0:
		f.o.Retries = 3
	case f.o.Retries < 0:
		f.o.Retries = 0
	}
	if f.o.RetryWaitMin <= 0 {
		f.o.RetryWaitMin = time.Second
	}
	if f.o.RetryWaitMax <= 0 {
		f.o.RetryWaitMax = 30 * time.Second
	}
	if f.o.RetryWaitMax < f.o.RetryWaitMin {
		f.o.RetryWaitMax = f.o.RetryWaitMin
	}
	if f.o.Proxy == nil {
		f.o.Proxy = http.ProxyFromEnvironment
	}
	if f.o.UserAgent == "" {
		f.o.UserAgent = "laptop.org-upgrade-fetch"
	}
	if f.o.MaxRate < 0 {
		return nil, fmt.Errorf("fetch: MaxRate %d: %w", f.o.MaxRate, errdefs.ErrInvalidArgument)
	}
	if f.o.MaxRate > 0 {
		f.limit = newLimiter(f.o.MaxRate)
	}
	f.sem = make(chan struct{}, f.o.Parallel)
	f.client = &http.Client{Transport: f.transport()}
	return f, nil
}

// transport is a private http.Transport: the default dialer already races
// IPv6 and IPv4 (Happy Eyeballs, IPv6 first) and passes an IPv6 zone from the
// URL host to the kernel. Compression is off because we verify and resume the
// bytes exactly as stored.
func (f *Fetcher) transport() *http.Transport {
	d := &net.Dialer{Timeout: f.o.StallTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 f.o.Proxy,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4 * f.o.Parallel,
		MaxIdleConnsPerHost:   f.o.Parallel,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   f.o.StallTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// BytesReceived counts payload bytes read from mirrors (network or file) in
// this Fetcher's life, including bytes that were later discarded.
func (f *Fetcher) BytesReceived() int64 { return f.received.Load() }

func (f *Fetcher) logf(format string, args ...any) {
	if f.o.Logf != nil {
		f.o.Logf(format, args...)
	}
}

// order returns mirror indexes: healthy mirrors first, each group in the
// configured order.
func (f *Fetcher) order() []int {
	var up, down []int
	for i := range f.mirrors {
		if f.down[i].Load() {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	return append(up, down...)
}

// checkPath validates a repo-relative path from signed metadata: relative,
// no dot or empty segments, and only characters that need no escaping, so
// that the URL we request is exactly the path that was signed.
func checkPath(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("path %q: %s: %w", p, why, errdefs.ErrInvalidArgument)
	}
	if p == "" {
		return bad("empty")
	}
	if strings.HasPrefix(p, "/") {
		return bad("absolute")
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("dot segment")
		}
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("/._-+~=,@", c) >= 0
		if !ok {
			return bad(fmt.Sprintf("character %q", c))
		}
	}
	return nil
}
