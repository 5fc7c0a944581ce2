package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/clidoc"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo"
)

// TestRootCeremonyCLI runs the ceremony through the command line: two
// root keys of which both must sign, one key for the other roles.
func TestRootCeremonyCLI(t *testing.T) {
	keys, dir := t.TempDir(), filepath.Join(t.TempDir(), "repo")
	draft := filepath.Join(t.TempDir(), "draft.json")
	for _, n := range []string{"r1", "r2", "rel"} {
		if err := keygen(keys, n); err != nil {
			t.Fatal(err)
		}
	}
	pub := func(n string) string { return filepath.Join(keys, n+".pub") }
	key := func(n string) string { return filepath.Join(keys, n+".key") }
	run := func(args ...string) (int, string) {
		var stderr bytes.Buffer
		code := clidoc.Execute(context.Background(), newRoot(), args, &stderr, nil)
		return code, stderr.String()
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"root", "draft", "--repo", dir, "--draft", draft, "--add", "owner=" + pub("r1")}, clidoc.ExitUsage, "ROLE one of"},
		{[]string{"root", "draft", "--repo", dir, "--draft", draft, "--threshold", "root=0"}, clidoc.ExitUsage, "N at least 1"},
		{[]string{"root", "draft", "--repo", dir, "--draft", draft, "--add", "root=" + pub("r1"), "--add", "root=" + pub("r2"),
			"--add", "targets=" + pub("rel"), "--add", "snapshot=" + pub("rel"), "--add", "timestamp=" + pub("rel"), "--threshold", "root=2"}, clidoc.ExitOK, ""},
		{[]string{"root", "sign", "--draft", draft, "--key", key("r1")}, clidoc.ExitOK, ""},
		{[]string{"root", "publish", "--repo", dir, "--draft", draft}, clidoc.ExitFail, "not signed by its own threshold"},
		{[]string{"root", "sign", "--draft", draft, "--key", key("r2")}, clidoc.ExitOK, ""},
		{[]string{"root", "publish", "--repo", dir, "--draft", draft}, clidoc.ExitOK, ""},
	} {
		code, stderr := run(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Fatalf("%v: exit %d, %q; want %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	m, err := publish.LoadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Root.Signed.Version != 1 || m.Root.Signed.Roles["root"].Threshold != 2 || len(m.Root.Signed.Roles["root"].KeyIDs) != 2 {
		t.Fatalf("root %d: root role %+v", m.Root.Signed.Version, m.Root.Signed.Roles["root"])
	}
	if _, err := os.Stat(filepath.Join(dir, repo.RootPathOf(1))); err != nil {
		t.Fatal(err)
	}
}
