// Package cmd_test holds the test of what each binary links: the trust
// boundary of docs/architecture.md, checked on the package graph, as
// tailscale's deps tests do.
package cmd_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The network stack, as the packages that carry it. The security service
// has no network (docs/security.md), and upgradectl only talks D-Bus.
// Package net itself is allowed: D-Bus runs over a unix socket through it.
var network = []string{
	"net/http", // and every net/http/... package
	"vendor/golang.org/x/net/http",
	"github.com/hashicorp/go-retryablehttp",
	"github.com/vishvananda/netlink",
	"laptop.org/upgrade/fetch",
	"laptop.org/upgrade/netmon",
}

func TestBinaryDeps(t *testing.T) {
	for _, tc := range []struct {
		cmd    string
		forbid []string // these and the packages below them
		need   []string // proof that the list is the real one
	}{
		{
			// securityd swings the boot pointer: it links verification
			// (security, repo, manifest, and later go-tuf's metadata), never
			// code that downloads or builds a slot.
			cmd: "securityd",
			forbid: append(slices.Clone(network),
				"laptop.org/upgrade/engine", "laptop.org/upgrade/daemon",
				"laptop.org/upgrade/clone", "laptop.org/upgrade/publish"),
			need: []string{"laptop.org/upgrade/security", "laptop.org/upgrade/security/bus",
				"laptop.org/upgrade/dbusapi", "github.com/godbus/dbus/v5", "net"},
		},
		{
			// upgradectl is a D-Bus client: the engine stays in the daemon.
			cmd: "upgradectl",
			forbid: append(slices.Clone(network),
				"laptop.org/upgrade/engine", "laptop.org/upgrade/daemon", "laptop.org/upgrade/security"),
			need: []string{"laptop.org/upgrade/dbusapi", "github.com/godbus/dbus/v5"},
		},
		{
			// The daemon stays resident and only answers D-Bus: the engine,
			// the downloader, TUF's metadata and the in-process security
			// service (--once --activate) run in upgrade-worker
			// (docs/architecture.md). It keeps netlink (netmon) to wait for
			// a route to a mirror, and reads the keys with repo/sigkey.
			cmd: "upgraded",
			forbid: []string{"net/http", "vendor/golang.org/x/net/http", "github.com/hashicorp/go-retryablehttp",
				"laptop.org/upgrade/fetch", "laptop.org/upgrade/engine", "laptop.org/upgrade/delta",
				"laptop.org/upgrade/publish", "laptop.org/upgrade/daemon/worker/serve",
				"laptop.org/upgrade/security",
				"github.com/theupdateframework/go-tuf", "google.golang.org/protobuf",
				// Its command line is clidoc/plain: cobra's help templates
				// would keep text/template's code resident.
				"github.com/spf13/cobra", "text/template"},
			need: []string{"laptop.org/upgrade/daemon", "laptop.org/upgrade/daemon/bus", "laptop.org/upgrade/daemon/worker",
				"laptop.org/upgrade/repo/sigkey", "laptop.org/upgrade/netmon", "github.com/vishvananda/netlink"},
		},
		{
			// The worker downloads and builds a slot, and speaks to no
			// one but its daemon (it links godbus only through the
			// journal's log handler, package systemd).
			cmd:    "upgrade-worker",
			forbid: []string{"laptop.org/upgrade/daemon/bus", "laptop.org/upgrade/dbusapi", "laptop.org/upgrade/bgpolicy"},
			need:   []string{"net/http", "laptop.org/upgrade/fetch", "laptop.org/upgrade/engine", "laptop.org/upgrade/daemon/worker/serve"},
		},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			imports := listDeps(t, "laptop.org/upgrade/cmd/"+tc.cmd)
			for _, p := range tc.need {
				if _, ok := imports[p]; !ok {
					t.Errorf("cmd/%s does not link %s: the package list is wrong", tc.cmd, p)
				}
			}
			for _, p := range slices.Sorted(maps.Keys(imports)) {
				for _, f := range tc.forbid {
					if p == f || strings.HasPrefix(p, f+"/") {
						t.Errorf("cmd/%s links %s: %s", tc.cmd, p, strings.Join(importChain(imports, "laptop.org/upgrade/cmd/"+tc.cmd, p), " -> "))
					}
				}
			}
		})
	}
}

// pageWriter is what writes man pages (clidoc's docs.go): only builds with
// the tag clidoc, which make install-docs runs, link it. Its markdown and
// YAML parsers allocate at init, so every start of a binary paid for them.
var pageWriter = []string{"github.com/spf13/cobra/doc", "github.com/cpuguy83/go-md2man",
	"github.com/russross/blackfriday", "go.yaml.in/yaml", "gopkg.in/yaml.v3"}

// TestNoPageWriter: the installed binaries run without the page writer.
func TestNoPageWriter(t *testing.T) {
	for _, c := range []string{"upgraded", "upgrade-worker", "securityd", "upgradectl", "upgrade-publish"} {
		imports := listDeps(t, "laptop.org/upgrade/cmd/"+c)
		if _, ok := imports["github.com/spf13/pflag"]; !ok && c != "upgrade-worker" {
			t.Errorf("cmd/%s does not link pflag: the test is looking at the wrong graph", c)
		}
		for _, p := range slices.Sorted(maps.Keys(imports)) {
			for _, f := range pageWriter {
				if p == f || strings.HasPrefix(p, f+"/") {
					t.Errorf("cmd/%s links %s: %s", c, p, strings.Join(importChain(imports, "laptop.org/upgrade/cmd/"+c, p), " -> "))
				}
			}
		}
	}
}

// listDeps runs `go list -deps` on pkg as make build builds it (no cgo)
// and returns every package it links with the packages each one imports.
func listDeps(t *testing.T, pkg string) map[string][]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// importChain is a shortest path of imports from root to p, so that a
// failure names the import to remove.
func importChain(imports map[string][]string, root, p string) []string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n == p {
			var chain []string
			for ; n != ""; n = prev[n] {
				chain = append([]string{n}, chain...)
			}
			return chain
		}
		for _, m := range imports[n] {
			if _, seen := prev[m]; !seen {
				prev[m] = n
				queue = append(queue, m)
			}
		}
	}
	return []string{root, "?", p}
}

// TestNoFixturesLinked: internal/ holds only test fixtures (a bus, a
// repository, trees, namespaces), which import the engine and the
// publisher; no shipped binary may link them.
func TestNoFixturesLinked(t *testing.T) {
	for _, c := range []string{"init", "securityd", "upgradectl", "upgraded", "upgrade-publish"} {
		root := "laptop.org/upgrade/cmd/" + c
		imports := listDeps(t, root)
		for _, p := range slices.Sorted(maps.Keys(imports)) {
			if strings.HasPrefix(p, "laptop.org/upgrade/internal/") {
				t.Errorf("cmd/%s links the fixture %s: %s", c, p, strings.Join(importChain(imports, root, p), " -> "))
			}
		}
	}
}
