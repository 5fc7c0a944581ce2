package security_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetworkCode: securityd must stay free of network code (issue 16).
// The security package links no HTTP client, fetcher or engine, and
// securityd links go-tuf's metadata checks only, never its updater, which
// brings its own HTTP fetcher.
func TestNoNetworkCode(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string
	}{
		{"laptop.org/upgrade/security", []string{
			"net/http", "laptop.org/upgrade/fetch", "laptop.org/upgrade/engine", "laptop.org/upgrade/daemon",
			"github.com/theupdateframework/go-tuf/v2/metadata/updater",
		}},
		{"laptop.org/upgrade/cmd/securityd", []string{
			"github.com/theupdateframework/go-tuf/v2/metadata/updater",
			"github.com/theupdateframework/go-tuf/v2/metadata/fetcher",
			"github.com/theupdateframework/go-tuf/v2/metadata/config",
		}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			deps := map[string]bool{}
			for _, p := range strings.Fields(string(out)) {
				deps[p] = true
			}
			if !deps["github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"] {
				t.Fatalf("%s does not link go-tuf's trustedmetadata: the list is not what this test expects", tc.pkg)
			}
			for _, f := range tc.forbidden {
				if deps[f] {
					t.Errorf("%s links %s", tc.pkg, f)
				}
			}
		})
	}
}
