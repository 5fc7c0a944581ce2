package manifest

import (
	"fmt"
	"strings"

	"laptop.org/upgrade/errdefs"
)

// Linux limits: NAME_MAX and PATH_MAX.
const (
	MaxName = 255
	MaxPath = 4095
)

// CheckPath accepts a slot-relative path: non-empty, slash-separated, no
// leading or trailing slash, no empty, "." or ".." component, no NUL, names of
// at most MaxName bytes, at most MaxPath bytes in all. Every path from outside
// data goes through here before it reaches the filesystem.
func CheckPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path: %w", errdefs.ErrUnsafePath)
	}
	if len(p) > MaxPath {
		return fmt.Errorf("path of %d bytes: %w", len(p), errdefs.ErrUnsafePath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %q contains NUL: %w", p, errdefs.ErrUnsafePath)
	}
	if p[0] == '/' {
		return fmt.Errorf("absolute path %q: %w", p, errdefs.ErrUnsafePath)
	}
	for c := range strings.SplitSeq(p, "/") { // no slice: every entry of every manifest passes here
		switch {
		case c == "":
			return fmt.Errorf("path %q has an empty component: %w", p, errdefs.ErrUnsafePath)
		case c == "." || c == "..":
			return fmt.Errorf("path %q has a %q component: %w", p, c, errdefs.ErrUnsafePath)
		case len(c) > MaxName:
			return fmt.Errorf("path %q has a name of %d bytes: %w", p, len(c), errdefs.ErrUnsafePath)
		}
	}
	return nil
}

// checkTarget accepts any symlink target the kernel would store. Targets are
// never followed by this system (every open uses RESOLVE_NO_SYMLINKS), so ".."
// or an absolute target is legitimate (e.g. /bin -> /current/bin).
func checkTarget(t string) error {
	if t == "" || len(t) > MaxPath || strings.IndexByte(t, 0) >= 0 {
		return fmt.Errorf("bad symlink target %q: %w", t, errdefs.ErrUnsafePath)
	}
	return nil
}

// Parent returns the parent path ("" for a top-level entry).
func Parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
