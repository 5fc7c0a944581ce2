package systemd_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/testtree"
	"laptop.org/upgrade/publish"
	"laptop.org/upgrade/repo/sigkey"
)

// TestPublisherUnitsVerify checks the build server's resign timer and
// service (systemd/publisher, shipped by the publisher package) as
// TestUnitsVerify does the laptop's: instances, so that ExecStart's binary
// is checked too.
func TestPublisherUnitsVerify(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	render(t, "publisher", dir, bin)
	for _, u := range []string{"upgrade-publish-resign@stable.service", "upgrade-publish-resign@stable.timer"} {
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", u)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":", "SYSTEMD_LOG_COLOR=0")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, stderr.String())
		}
	}
}

// TestResignServiceRuns runs the service's ExecStart line as systemd
// would expand it (EnvironmentFile variables, %i) against a real
// repository: the index gets a new serial and a later expiry, so the
// unit's flags are ones upgrade-publish accepts.
func TestResignServiceRuns(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	render(t, "publisher", dir, bin)
	k, err := sigkey.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tree, repoDir, keyFile := filepath.Join(dir, "tree"), filepath.Join(dir, "repo"), filepath.Join(dir, "release.key")
	if err := testtree.Build(tree, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, sigkey.MarshalPrivate(k), 0600); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Add(context.Background(), tree, publish.Options{Repo: repoDir, Key: k, Channel: "stable", Hardware: "xo-4"}); err != nil {
		t.Fatal(err)
	}
	_, before, err := publish.LoadIndex(publish.Options{Repo: repoDir, Key: k, Channel: "stable"})
	if err != nil {
		t.Fatal(err)
	}

	unit, err := os.ReadFile(filepath.Join(dir, "upgrade-publish-resign@.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("no ExecStart")
	}
	env := map[string]string{"UPGRADE_REPO": repoDir, "UPGRADE_KEY": keyFile} // /etc/upgrade-publish/stable.conf
	var argv []string
	for _, f := range strings.Fields(string(m[1])) {
		f = strings.ReplaceAll(f, "%i", "stable")
		f = regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(f, func(v string) string { return env[v[2:len(v)-1]] })
		argv = append(argv, f)
	}
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	_, after, err := publish.LoadIndex(publish.Options{Repo: repoDir, Key: k, Channel: "stable"})
	if err != nil {
		t.Fatal(err)
	}
	if after.Serial != before.Serial+1 || after.Expires.Before(before.Expires) || after.Hardware != "xo-4" {
		t.Errorf("after the service: serial %d (was %d), expires %s (was %s), hardware %q", after.Serial, before.Serial, after.Expires, before.Expires, after.Hardware)
	}
}
