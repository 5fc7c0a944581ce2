package layout

import "testing"

// TestValidChannel: a channel names a file (seen-index/CHANNEL.json), so
// nothing that could leave the directory or hide is accepted.
func TestValidChannel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"stable", true}, {"beta-2", true}, {"xo_1.75", true}, {"a", true},
		{"", false}, {".", false}, {"..", false}, {"../etc", false}, {"a/b", false},
		{".hidden", false}, {"-x", false}, {"Stable", true}, {"a b", false}, {"a\x00", false},
		{string(make([]byte, 65)), false},
	} {
		if got := ValidChannel(tc.in); got != tc.want {
			t.Errorf("ValidChannel(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
