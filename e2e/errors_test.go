package e2e

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/dbusapi"
	"laptop.org/upgrade/layout"
)

// deadMirror is a URL on [::1] where nothing listens (connection refused).
func deadMirror(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()
	return url
}

// tamperedIndex is the repository's timestamp with one bit of its
// signature flipped: well-formed, but signed by nobody we trust.
func tamperedIndex(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	sigs := env["signatures"].([]any)
	s := sigs[0].(map[string]any)
	raw, err := hex.DecodeString(s["sig"].(string))
	if err != nil {
		t.Fatal(err)
	}
	raw[0] ^= 1
	s["sig"] = hex.EncodeToString(raw)
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantError checks a D-Bus error's name and that its message tells a person
// what happened (each fragment must appear).
func wantError(t *testing.T, what string, err error, name string, fragments ...string) {
	t.Helper()
	if got := dbusErrName(err); got != name {
		t.Errorf("%s: error %q (%s), want %s", what, got, dbusErrMsg(err), name)
		return
	}
	msg := dbusErrMsg(err)
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("%s: message %q does not mention %q", what, msg, f)
		}
	}
	// A message that says the same thing twice hides what matters.
	seen := map[string]bool{}
	for _, clause := range strings.Split(msg, ": ") {
		if len(clause) > 20 && seen[clause] {
			t.Errorf("%s: message repeats %q: %s", what, clause, msg)
		}
		seen[clause] = true
	}
	t.Logf("%s: %s: %s", what, name, msg)
}

// TestTypedErrors checks that failures reach clients as the documented
// error names with messages a person can act on, both as the reply to a
// call and as Finished, LastError and LastErrorMessage for a job.
func TestTypedErrors(t *testing.T) {
	rp := smallRepo(t)
	check := func(conn *dbus.Conn) error {
		return upgradeObj(conn).Call(dbusapi.UpgradeInterface+".Check", 0).Err
	}
	// jobFails starts an upgrade and checks its Finished and LastError.
	jobFails := func(e *env, version, name, fragment string) {
		t := e.t
		t.Helper()
		w := e.watch()
		conn := e.conn()
		job := e.startUpgrade(conn, version, nil)
		f := w.waitFinished(job, jobTimeout)
		if f.Success || f.Name != name || !strings.Contains(f.Message, fragment) {
			t.Errorf("Finished = %+v, want %s mentioning %q", f, name, fragment)
		}
		if got := prop(t, conn, "LastError"); got != name {
			t.Errorf("LastError = %q, want %s", got, name)
		}
		if got := prop(t, conn, "LastErrorMessage"); got != f.Message {
			t.Errorf("LastErrorMessage = %q, want the Finished message %q", got, f.Message)
		}
		if p := e.pointer(); p.Next != layout.SlotA || p.Trial {
			t.Errorf("a failed job moved the boot pointer: %+v", p)
		}
	}

	t.Run("network", func(t *testing.T) {
		mirror := deadMirror(t)
		e := newEnv(t, rp, envOpts{mirror: mirror})
		conn := e.conn()
		wantError(t, "Check with no mirror reachable", check(conn), dbusapi.ErrNetwork, strings.TrimSuffix(mirror, "/"), "connection refused")
		// The fetcher retries with backoff (about 7 s); a job would do the
		// same again, so the result is read from the properties Check set.
		if got := prop(t, conn, "LastError"); got != dbusapi.ErrNetwork {
			t.Errorf("LastError after the failed Check = %q, want %s", got, dbusapi.ErrNetwork)
		}
	})

	t.Run("bad-signature", func(t *testing.T) {
		e := newEnv(t, rp, envOpts{})
		e.srv.serveBytes("/timestamp.json", tamperedIndex(t, rp.Dir))
		wantError(t, "Check with a tampered timestamp", check(e.conn()), dbusapi.ErrBadSignature, "not enough signatures")
		jobFails(e, "", dbusapi.ErrBadSignature, "signature")
	})

	t.Run("invalid-args", func(t *testing.T) {
		e := newEnv(t, rp, envOpts{})
		obj := upgradeObj(e.conn())
		for _, c := range []struct {
			name     string
			version  string
			opts     map[string]dbus.Variant
			fragment string
		}{
			{"unknown option", "", map[string]dbus.Variant{"bogus": dbus.MakeVariant(true)}, `unknown option "bogus"`},
			{"force not a boolean", "", map[string]dbus.Variant{"force": dbus.MakeVariant("yes")}, `"force" must be a boolean`},
			{"tries as int32", "", map[string]dbus.Variant{"tries": dbus.MakeVariant(int32(3))}, `"tries" must be a uint32`},
			{"tries out of range", "", map[string]dbus.Variant{"tries": dbus.MakeVariant(uint32(0))}, "from 1 to 99"},
			{"version not a number", "latest", nil, `version "latest"`},
			{"version with a dot", "2.0", nil, `version "2.0"`},
			{"negative version", "-1", nil, `version "-1"`},
			{"version zero", "0", nil, `version "0"`},
		} {
			if c.opts == nil {
				c.opts = map[string]dbus.Variant{}
			}
			err := obj.Call(dbusapi.UpgradeInterface+".Upgrade", 0, c.version, c.opts).Err
			wantError(t, c.name, err, dbusapi.ErrInvalidArgs, c.fragment)
		}
		if err := obj.Call(dbusapi.UpgradeInterface+".Preflight", 0, "two").Err; dbusErrName(err) != dbusapi.ErrInvalidArgs {
			t.Errorf("Preflight(\"two\"): %v, want InvalidArgs", err)
		}
		if hs := history(t, e.conn()); len(hs) != 0 {
			t.Errorf("refused calls left jobs behind: %v", hs)
		}
		// Whether a version exists is known only from the signed index,
		// so these start a job that fails.
		jobFails(e, "7", dbusapi.ErrNotFound, "version 7")
		jobFails(e, "1", dbusapi.ErrUpToDate, "version 1 is already running")
	})

	t.Run("no-space", func(t *testing.T) {
		// A root on a tmpfs that holds version 1 but has too little room
		// left for an upgrade (the daemon keeps a margin for the system).
		dir := filepath.Join(t.TempDir(), "tmpfs")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m,mode=0755"); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(dir, 0); err != nil {
				t.Errorf("unmount %s: %v", dir, err)
				unix.Unmount(dir, unix.MNT_DETACH)
			}
		})
		e := newEnv(t, rp, envOpts{rootIn: dir})
		wantError(t, "Check on a full disk", check(e.conn()), dbusapi.ErrNoSpace, "MB on disk", "kept free for the running system", "MB are free")
		jobFails(e, "", dbusapi.ErrNoSpace, "free")
	})
}
