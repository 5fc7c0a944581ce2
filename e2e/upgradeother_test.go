package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
)

// threeVersions is a copy of the small repository with a version 3
// (version 2's tree plus one file), published by upgrade-publish.
func threeVersions(t *testing.T) *pubRepo {
	t.Helper()
	rp := *smallRepo(t)
	base := t.TempDir()
	dir, tree := filepath.Join(base, "repo"), filepath.Join(base, "tree3")
	for _, c := range [][]string{{"cp", "-a", rp.Dir, dir}, {"cp", "-a", rp.Trees[1], tree}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	writeFile(t, filepath.Join(tree, "etc", "release-3"), []byte("3\n"))
	key := filepath.Join(filepath.Dir(rp.Dir), "secret", "test.key")
	if out, err := exec.Command(bin("upgrade-publish"), "add", "--repo", dir, "--key", key, "--channel", testrepo.Channel, tree).CombinedOutput(); err != nil {
		t.Fatalf("upgrade-publish add: %v\n%s", err, out)
	}
	rp.Dir = dir
	rp.Trees = append(rp.Trees[:2:2], tree)
	return &rp
}

// TestPolicyUpgradeOther runs the real polkitd with a site rule that lets
// nobody upgrade: that is enough for the newest version, but another one
// (version 2 while 3 exists) needs org.laptop.upgrade.upgrade-other, which
// is auth_admin by default; a rule granting it lets nobody choose it.
func TestPolicyUpgradeOther(t *testing.T) {
	rp := threeVersions(t)
	const up, path = "org.laptop.Upgrade1", "/org/laptop/Upgrade1"
	const notAuthorized = "GDBus.Error:org.laptop.Upgrade1.Error.NotAuthorized"
	t.Run("newest only", func(t *testing.T) {
		e := newEnv(t, rp, envOpts{})
		e.bus.StartPolkit(t, allowUpgradeRules)
		// 2 is not the newest; 3 is, but before a check the daemon cannot know.
		for _, v := range []string{"2", "3"} {
			r := e.gdbusCall(nobody, up, path, up+".UpgradeTo", v)
			if r.code == 0 || !strings.Contains(r.stderr, notAuthorized) || !strings.Contains(r.stderr, "org.laptop.upgrade.upgrade-other") {
				t.Errorf("nobody: UpgradeTo(%q): want %s naming upgrade-other:\n%s", v, notAuthorized, r)
			}
		}
		if p := e.pointer(); p.Next != layout.SlotA || p.Trial {
			t.Errorf("refused upgrades moved the pointer: %+v", p)
		}
		if r := e.ctl(0, "check"); r.code != 0 {
			t.Fatalf("root: upgradectl check:\n%s", r)
		}
		if r := e.ctl(nobody, "upgrade", "2"); r.code != 4 {
			t.Errorf("nobody: upgradectl upgrade 2 after the check: want exit 4:\n%s", r)
		}
		r := e.ctl(nobody, "upgrade", "3")
		if r.code != 0 || !strings.Contains(r.stdout, "version 3 is ready in slot b") {
			t.Fatalf("nobody: upgradectl upgrade 3 (the newest, known from the check):\n%s", r)
		}
	})
	t.Run("granted", func(t *testing.T) {
		e := newEnv(t, rp, envOpts{})
		e.bus.StartPolkit(t, `polkit.addRule(function(action, subject) {
	if (action.id == "org.laptop.upgrade.upgrade-other" && subject.user == "nobody")
		return polkit.Result.YES;
});`)
		r := e.ctl(nobody, "upgrade", "2")
		if r.code != 0 || !strings.Contains(r.stdout, "version 2 is ready in slot b") {
			t.Fatalf("nobody granted upgrade-other: upgradectl upgrade 2:\n%s", r)
		}
		if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
			t.Errorf("pointer after the upgrade to 2: %+v", p)
		}
	})
}
