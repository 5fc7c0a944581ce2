package daemon

import (
	"errors"
	"testing"

	"laptop.org/upgrade/errdefs"
)

// FuzzParseFileConfig feeds arbitrary config files: the daemon reads this
// file at every start, so a broken one must give a classified error naming
// the line, never a panic. Seeds: testdata/fuzz/FuzzParseFileConfig.
func FuzzParseFileConfig(f *testing.F) {
	f.Add([]byte("# comment\nmirror = http://[::1]:8080/\nchannel = stable\ntries = 3\nbackground_rate = 500k\nstall_timeout = 30s\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseFileConfig(b, DefaultFileConfig())
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("error without a class: %v", err)
		}
	})
}
