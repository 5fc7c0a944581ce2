package testbus

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	polkitd = "/usr/lib/polkit-1/polkitd"
	// polkitName is the bus name polkitd owns once it is ready.
	polkitName = "org.freedesktop.PolicyKit1"
	// polkitBaseActions must sit next to the project's actions: polkitd
	// refuses to run without its own org.freedesktop.policykit.* actions.
	polkitBaseActions = "/usr/share/polkit-1/actions/org.freedesktop.policykit.policy"
)

// mountAndRun replaces polkitd's fixed actions and rules folders with the
// test's copies in a private mount namespace (so nothing outside the
// namespace changes, and two tests can run polkitd side by side), then
// becomes polkitd. Paths arrive as positional parameters, never quoted into
// the script.
const mountAndRun = `mount --bind "$1" /usr/share/polkit-1/actions &&
mount --bind "$2" /etc/polkit-1/rules.d &&
exec ` + polkitd

// StartPolkit runs a real polkitd on b with the project's actions
// (systemd/polkit/*.policy) and rules, the JavaScript of one rules file
// (see polkit(8)), and waits until it owns org.freedesktop.PolicyKit1.
// It is stopped at t's cleanup. Needs root (mount namespace).
//
// No logind runs here, so the allow_active/allow_inactive defaults never
// apply to a test caller: say what a test needs in rules.
func (b *Bus) StartPolkit(t testing.TB, rules string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testbus: polkitd needs root for its private mount namespace")
	}
	if _, err := os.Stat(polkitd); err != nil {
		t.Fatalf("testbus: polkitd not installed (run `make deps`; scripts/deps.d/dbus.txt): %v", err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("testbus: %v", err)
	}
	actions := filepath.Join(b.Dir, "polkit-actions")
	rulesDir := filepath.Join(b.Dir, "polkit-rules.d")
	for _, d := range []string{actions, rulesDir} {
		// polkitd reads these after dropping to its own user.
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("testbus: %v", err)
		}
	}
	if err := copyGlob(polkitBaseActions, actions); err != nil {
		t.Fatalf("testbus: copy polkit's own actions: %v", err)
	}
	if err := copyGlob(filepath.Join(root, "systemd", "polkit", "*.policy"), actions); err != nil {
		t.Fatalf("testbus: copy project actions: %v", err)
	}
	// 00- sorts before every rules file in /usr/share/polkit-1/rules.d, so
	// the test's rules decide first.
	if err := os.WriteFile(filepath.Join(rulesDir, "00-testbus.rules"), []byte(rules), 0o644); err != nil {
		t.Fatalf("testbus: %v", err)
	}

	log := &syncBuffer{}
	// Not --no-debug: its output (rules loaded, JavaScript errors) is shown
	// when a test fails, and is the quickest way to a broken rule.
	cmd := exec.Command("unshare", "-m", "--propagation", "private",
		"sh", "-c", mountAndRun, "sh", actions, rulesDir)
	cmd.Env = b.Env()
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testbus: start polkitd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("testbus: polkitd log:\n%s", log)
		}
	})

	conn, err := dbus.Connect(b.Addr)
	if err != nil {
		t.Fatalf("testbus: connect: %v", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		var has bool
		err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, polkitName).Store(&has)
		if err != nil {
			t.Fatalf("testbus: NameHasOwner: %v", err)
		}
		if has {
			return
		}
		select {
		case <-exited:
			t.Fatalf("testbus: polkitd exited before owning %s (log below)", polkitName)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testbus: polkitd did not own %s within %v (log below)", polkitName, startTimeout)
		}
	}
}
