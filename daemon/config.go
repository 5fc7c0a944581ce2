package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/errdefs"
)

// FileConfig is R/etc/upgrade/upgraded.conf: "key = value" lines, '#'
// comments, `mirror` repeatable (tried in order). Paths are inside the root.
type FileConfig struct {
	Mirrors       []string
	Channel       string
	Hardware      string
	Keys          string        // directory of trusted *.pub keys
	Tries         int           // boots a new slot gets before fallback
	Parallel      int           // concurrent downloads
	StallTimeout  time.Duration // a connection silent this long is dropped
	BackgroundBPS int64         // bandwidth cap for timer-started jobs (bytes/s, 0 = none)
	MinBattery    int           // percent below which background jobs wait (0 = ignore)
	AllowMetered  bool          // background downloads on metered connections
	AllowDevices  bool          // manifests may contain device nodes
	Proxy         string        // http proxy for mirrors (besides $http_proxy)
}

// ChannelToken in a mirror URL stands for the channel followed, so that one
// mirror list serves every channel (a repository holds one channel's index)
// and switching channels needs no other change.
const ChannelToken = "{channel}"

// ExpandMirrors returns mirrors with ChannelToken replaced by channel
// (ValidChannel names are safe in a URL path).
func ExpandMirrors(mirrors []string, channel string) []string {
	out := make([]string, len(mirrors))
	for i, m := range mirrors {
		out[i] = strings.ReplaceAll(m, ChannelToken, channel)
	}
	return out
}

// DefaultFileConfig is used for keys a file does not set.
func DefaultFileConfig() FileConfig {
	return FileConfig{Channel: "stable", Keys: "/etc/upgrade/keys", Tries: 3, Parallel: 4, StallTimeout: 30 * time.Second, MinBattery: 30}
}

// LoadFileConfig reads path; a missing file gives the defaults.
func LoadFileConfig(path string) (FileConfig, error) {
	c := DefaultFileConfig()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	return ParseFileConfig(b, c)
}

// ParseFileConfig parses config text over defaults. Unknown keys are errors:
// a typo must not silently leave a machine without updates.
func ParseFileConfig(b []byte, c FileConfig) (FileConfig, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("config line %d: want key = value: %w", n, errdefs.ErrInvalidArgument)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		key := findKey(k)
		if key == nil {
			return c, fmt.Errorf("config line %d: unknown key %q: %w", n, k, errdefs.ErrInvalidArgument)
		}
		err := key.set(&c, v)
		if err != nil {
			return c, fmt.Errorf("config line %d: %s: %v: %w", n, k, err, errdefs.ErrInvalidArgument)
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("config: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// parseBytes reads "500k", "2M", "1G" or a plain number of bytes.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
