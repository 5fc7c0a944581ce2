package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
)

// runNoBus runs a binary with no system bus reachable at all.
func runNoBus(t *testing.T, dir, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin(name), args...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus", "XDG_CONFIG_HOME="+dir)
	cmd.Dir = dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCommandLines: help, --version and usage mistakes work without a bus
// for every binary; mistakes exit 2 with the usage, never run anything.
func TestCommandLines(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		bin  string
		args []string
		code int
		out  string // in stdout (code 0) or stderr
	}{
		{"upgradectl", []string{"--help"}, 0, "Available Commands"},
		{"upgradectl", []string{"upgrade", "--help"}, 0, "--download-only"},
		{"upgradectl", []string{"help", "rollback"}, 0, "withdrawn"},
		{"upgradectl", []string{"--version"}, 0, "upgradectl "},
		{"upgradectl", []string{"bogus"}, 2, `unknown command "bogus"`},
		{"upgradectl", []string{}, 2, "Usage:"},
		{"upgradectl", []string{"status", "extra"}, 2, "takes no arguments"},
		{"upgradectl", []string{"upgrade", "1", "2"}, 2, "accepts at most 1 arg"},
		{"upgradectl", []string{"status", "--bogus"}, 2, "unknown flag: --bogus"},
		{"upgradectl", []string{"upgrade", "--download-only", "--reboot"}, 2, "exclude each other"},
		{"upgradectl", []string{"status", "--json"}, 1, "system bus"}, // the flag after the command is taken
		{"upgraded", []string{"--help"}, 0, "--target-version"},
		{"upgraded", []string{"--version"}, 0, "upgraded "},
		{"upgraded", []string{"extra"}, 2, "takes no arguments"},
		{"securityd", []string{"--version"}, 0, "securityd "},
		{"securityd", []string{"--bogus"}, 2, "unknown flag"},
		{"upgrade-publish", []string{"--version"}, 0, "upgrade-publish "},
		{"init", []string{"--version"}, 0, "init "},
		{"upgrade-publish", []string{"add"}, 2, "one TREE"},
		{"upgrade-publish", []string{"add", "--help"}, 0, "--notes"},
		{"upgrade-publish", []string{"keygen", "--listen", "x"}, 2, "unknown flag: --listen"},
		{"upgrade-publish", []string{"serve", "extra", "--repo", "x"}, 2, "takes no arguments"},
		{"upgrade-publish", []string{"resign"}, 2, `required flag(s) "key", "repo" not set`},
	} {
		r := runNoBus(t, dir, tc.bin, tc.args...)
		text := r.stdout
		if tc.code != 0 {
			text = r.stderr
		}
		if r.code != tc.code || !strings.Contains(text, tc.out) {
			t.Errorf("%s %q: want exit %d and %q:\n%s", tc.bin, tc.args, tc.code, tc.out, r)
		}
	}
}

// TestKeygen: the default directory is the user's config directory, not
// the current one, and an existing key is never overwritten.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	r := runNoBus(t, dir, "upgrade-publish", "keygen", "--name", "k")
	keyDir := filepath.Join(dir, "upgrade-publish", "keys") // $XDG_CONFIG_HOME/upgrade-publish/keys
	secret, err := os.ReadFile(filepath.Join(keyDir, "k.key"))
	if r.code != 0 || err != nil {
		t.Fatalf("keygen: %v\n%s", err, r)
	}
	if _, err := os.Stat(filepath.Join(dir, "k.key")); err == nil {
		t.Error("keygen wrote into the current directory")
	}
	r = runNoBus(t, dir, "upgrade-publish", "keygen", "--name", "k")
	again, _ := os.ReadFile(filepath.Join(keyDir, "k.key"))
	if r.code == 0 || !strings.Contains(r.stderr, "never overwrites") || string(again) != string(secret) {
		t.Errorf("second keygen with the same name: want a refusal and the key kept:\n%s", r)
	}
}

// TestReloadMirrors: SIGHUP (systemctl reload) applies a changed mirror
// list from upgraded.conf to the next check; a file that does not parse
// changes nothing.
func TestReloadMirrors(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	conf := filepath.Join(t.TempDir(), "upgraded.conf")
	writeFile(t, conf, []byte("mirror = "+deadMirror(t)+"\n"))
	_ = e.upgraded.cmd.Process.Signal(syscall.SIGTERM)
	<-e.upgraded.done
	e.upgraded = e.start("upgraded", dbusapi.UpgradeName, "--root", e.root, "--keys", e.rp.KeysDir, "--config", conf, "--network-wait", "1s")
	obj := upgradeObj(e.conn())
	if err := obj.Call(dbusapi.UpgradeInterface+".Check", 0).Err; dbusErrName(err) != dbusapi.ErrNetwork {
		t.Fatalf("Check against the dead mirror: %v, want Network", err)
	}
	hup := func(text string) {
		writeFile(t, conf, []byte(text))
		if err := e.upgraded.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	hup("mirror = " + e.srv.URL + "\nbogus = 1\n")
	time.Sleep(time.Second) // nothing to wait for: the reload is refused
	if err := obj.Call(dbusapi.UpgradeInterface+".Check", 0).Err; dbusErrName(err) != dbusapi.ErrNetwork {
		t.Fatalf("Check after a bad config was refused: %v, want still Network", err)
	}
	hup("# the school's mirror\nmirror = " + e.srv.URL + "\n")
	deadline := time.Now().Add(jobTimeout)
	for {
		var m map[string]dbus.Variant
		err := obj.Call(dbusapi.UpgradeInterface+".Check", 0).Store(&m)
		if err == nil {
			if v := m["available_version"].Value(); v != "2" {
				t.Errorf("Check after the reload: available %v, want 2", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check never used the reloaded mirror: %v\n%s", err, e.upgraded.log)
		}
		time.Sleep(200 * time.Millisecond) // the signal is handled asynchronously
	}
	if !strings.Contains(e.upgraded.log.String(), "keeping the settings in force") {
		t.Errorf("the refused reload was not logged:\n%s", e.upgraded.log)
	}
}

// TestStageThenApply: upgrade --download-only builds and verifies the
// version without touching the boot pointer; apply activates it without
// downloading; rollback then withdraws it and says so.
func TestStageThenApply(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	r := e.ctl(0, "upgrade", "--download-only")
	if r.code != 0 || !strings.Contains(r.stdout, "version 2 is staged") {
		t.Fatalf("upgrade --download-only:\n%s", r)
	}
	if p := e.pointer(); p.Next != layout.SlotA || p.Trial {
		t.Errorf("staging moved the boot pointer: %+v", p)
	}
	conn := e.conn()
	if st, av := prop(t, conn, "State"), prop(t, conn, "AvailableVersion"); st != "idle" || av != "2" {
		t.Errorf("after staging: State %q AvailableVersion %q, want idle and 2", st, av)
	}
	e.srv.reset()
	r = e.ctl(0, "apply")
	if r.code != 0 || !strings.Contains(r.stdout, "version 2 is ready in slot b") {
		t.Fatalf("apply:\n%s", r)
	}
	if objs := e.srv.sent.Load(); objs > 64<<10 {
		t.Errorf("apply downloaded %d bytes; want only the index", objs)
	}
	if p := e.pointer(); p.Next != layout.SlotB || !p.Trial {
		t.Errorf("after apply the pointer is %+v, want next b on trial", p)
	}
	r = e.ctl(0, "rollback")
	if r.code != 0 || !strings.Contains(r.stdout, "withdrawn") {
		t.Errorf("rollback of the applied version:\n%s", r)
	}
	if av := prop(t, conn, "AvailableVersion"); av != "2" {
		t.Errorf("AvailableVersion after the withdrawal = %q, want 2 (built, an upgrade activates it)", av)
	}
}

// TestStrictArguments: versions are plain decimals, and no error reply
// echoes a huge argument back.
func TestStrictArguments(t *testing.T) {
	e := newEnv(t, smallRepo(t), envOpts{})
	obj := upgradeObj(e.conn())
	for _, v := range []string{" 2", "2\n", "02", strings.Repeat(" ", 1<<20) + "2"} {
		err := obj.Call(dbusapi.UpgradeInterface+".UpgradeTo", 0, v).Err
		if dbusErrName(err) != dbusapi.ErrInvalidArgs {
			t.Errorf("UpgradeTo(%.20q): %v, want InvalidArgs", v, err)
		}
		if msg := dbusErrMsg(err); len(msg) > 512 {
			t.Errorf("UpgradeTo(%.20q): the error is %d bytes long", v, len(msg))
		}
	}
	if err := obj.Call(dbusapi.UpgradeInterface+".SetChannel", 0, "../etc").Err; dbusErrName(err) != dbusapi.ErrInvalidArgs {
		t.Errorf("SetChannel(../etc): %v, want InvalidArgs", err)
	}
}

// TestChannelSwitch: one mirror list serves both channels ({channel} in
// the URL); upgradectl channel switches, durably, and back. The beta index
// has the same serial as the stable one the machine saw, with other bytes:
// with one global last-seen serial that was refused as a fork.
func TestChannelSwitch(t *testing.T) {
	rp := smallRepo(t)
	e := newEnv(t, rp, envOpts{})
	mirrors := t.TempDir()
	if err := os.Symlink(rp.Dir, filepath.Join(mirrors, testrepo.Channel)); err != nil {
		t.Fatal(err)
	}
	beta := filepath.Join(mirrors, "beta")
	key := filepath.Join(filepath.Dir(rp.Dir), "secret", "test.key")
	for i, v := range []string{"1", "3"} {
		out, err := exec.Command(bin("upgrade-publish"), "add", "--repo", beta, "--key", key, "--channel", "beta", "--version", v, rp.Trees[i]).CombinedOutput()
		if err != nil {
			t.Fatalf("publish beta %s: %v\n%s", v, err, out)
		}
	}
	restart := func() {
		_ = e.upgraded.cmd.Process.Signal(syscall.SIGTERM)
		<-e.upgraded.done
		e.upgraded = e.start("upgraded", dbusapi.UpgradeName, "--root", e.root, "--keys", e.rp.KeysDir, "--mirror", "file://"+mirrors+"/{channel}/")
	}
	restart()
	if r := e.ctl(0, "check"); r.code != 0 || !strings.Contains(r.stdout, "version 2 is available") {
		t.Fatalf("check on %s:\n%s", testrepo.Channel, r)
	}
	if r := e.ctl(0, "channel", "beta"); r.code != 0 || !strings.Contains(r.stdout, "channel: beta") {
		t.Fatalf("channel beta:\n%s", r)
	}
	if r := e.ctl(0, "check"); r.code != 0 || !strings.Contains(r.stdout, "version 3 is available") {
		t.Errorf("check on beta:\n%s", r)
	}
	restart()
	if ch := prop(t, e.conn(), "Channel"); ch != "beta" {
		t.Errorf("Channel after a restart = %q, want beta", ch)
	}
	if r := e.ctl(0, "channel", ""); r.code != 0 || !strings.Contains(r.stdout, "channel: "+testrepo.Channel) {
		t.Fatalf(`channel "":`+"\n%s", r)
	}
	if r := e.ctl(0, "check"); r.code != 0 || !strings.Contains(r.stdout, "version 2 is available") {
		t.Errorf("check back on %s:\n%s", testrepo.Channel, r)
	}
	for _, ch := range []string{testrepo.Channel, "beta"} {
		if _, err := os.Stat(e.lr.SeenIndexFor(ch)); err != nil {
			t.Errorf("no last-seen serial kept for %s: %v", ch, err)
		}
	}
}

// TestReleaseNotes: the release name and notes given to `upgrade-publish
// add` travel in the signed index to `upgradectl check` and `status`,
// with the download size.
func TestReleaseNotes(t *testing.T) {
	notes := filepath.Join(t.TempDir(), "notes.txt")
	writeFile(t, notes, []byte("New reading activity.\nFaster start-up.\n"))
	rp := publishRepoWith(t, "notes", nil, func(v int) []string {
		if v == 2 {
			return []string{"--name", "2026.12 spring", "--notes", notes}
		}
		return nil
	})
	e := newEnv(t, rp, envOpts{})
	r := e.ctl(0, "check")
	for _, want := range []string{"version 2 (2026.12 spring) is available", "download ", "release notes:\n  New reading activity.\n  Faster start-up."} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("check: want exit 0 and %q:\n%s", want, r)
		}
	}
	r = e.ctl(0, "status")
	for _, want := range []string{"available:    version 2 (2026.12 spring), download ", "release notes of version 2:\n  New reading activity."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status: want %q:\n%s", want, r)
		}
	}
	if n := prop(t, e.conn(), "ReleaseNotes"); n != "New reading activity.\nFaster start-up.\n" {
		t.Errorf("ReleaseNotes = %q", n)
	}
}

// TestCheckStallingMirror: a mirror that accepts and then says nothing
// makes Check answer Network within the 25 s a D-Bus client waits by
// default (it blocked for 2 minutes and ended Cancelled, so clients got
// NoReply and then Busy); LastError says Network too.
func TestCheckStallingMirror(t *testing.T) {
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	url := testrepo.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stall:
		}
	}))
	e := newEnv(t, smallRepo(t), envOpts{mirror: url})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	conn := e.conn()
	err := upgradeObj(conn).CallWithContext(ctx, dbusapi.UpgradeInterface+".Check", 0).Err
	if dbusErrName(err) != dbusapi.ErrNetwork {
		t.Fatalf("Check against a stalling mirror: %v (%s), want Network within 25 s", err, dbusErrName(err))
	}
	if le := prop(t, conn, "LastError"); le != dbusapi.ErrNetwork {
		t.Errorf("LastError = %q, want Network", le)
	}
	if st := prop(t, conn, "State"); st != "idle" {
		t.Errorf("State after the check = %q, want idle (not Busy)", st)
	}
}
