package mirror

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/errdefs"
)

// TestParse is the table of mirror URLs New accepts and rejects.
func TestParse(t *testing.T) {
	tests := []struct {
		in       string
		want     string // "" = rejected
		wantHost string // what the dialer gets
	}{
		{"http://[::1]:8080/repo", "http://[::1]:8080/repo/", "[::1]:8080"},
		{"http://[fe80::1%25eth0]:8080/", "http://[fe80::1%25eth0]:8080/", "[fe80::1%eth0]:8080"},
		{"https://[2001:db8::1]/", "https://[2001:db8::1]/", "[2001:db8::1]"},
		{"http://host/", "http://host/", "host"},
		{"http://host.example:80/a/b/", "http://host.example:80/a/b/", "host.example:80"},
		{"file:///media/usb/repo", "file:///media/usb/repo/", ""},
		{"file://localhost/media/usb", "file:///media/usb/", ""},
		{"http://[fe80::1]:8080/", "", ""},          // link-local needs a zone
		{"http://[2001:db8::1%25eth0]/", "", ""},    // zone on a global address
		{"http://[::1/", "", ""},                    // unbalanced bracket
		{"http://[1.2.3.4]/", "", ""},               // not IPv6
		{"ftp://host/", "", ""},                     // scheme
		{"host/repo", "", ""},                       // no scheme
		{"http:///repo", "", ""},                    // no host
		{"http://host:0/", "", ""},                  // port
		{"http://host:99999/", "", ""},              // port
		{"http://host/?x=1", "", ""},                // query
		{"http://host/#frag", "", ""},               // fragment
		{"http://user:pw@host/", "", ""},            // user info
		{"file://server/share", "", ""},             // file with a host
		{"file:relative/path", "", ""},              // opaque
		{"http://host/a/../b/", "", ""},             // dot segment
		{"http://[fe80::1%25eth0%25x]:80/", "", ""}, // garbage zone
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := Parse(tc.in)
			if tc.want == "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("got %v, %v; want ErrInvalidArgument", u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([2]string{tc.want, tc.wantHost}, [2]string{u.String(), u.Host}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
