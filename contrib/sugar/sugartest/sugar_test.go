package sugartest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"laptop.org/upgrade/internal/testbus"
)

// python is Debian's interpreter, the one with python3-dbus, python3-gi and
// jarabe; the python3 first on PATH may be another.
const python = "/usr/bin/python3"

// pythonTimeout bounds one Python suite; the model suite needs about a
// minute, the view suite less. Generous for a loaded machine.
const pythonTimeout = 15 * time.Minute

// The model against the real daemon: check, upgrade with progress to
// ready-to-reboot and "restart now", cancel, the error paths, a daemon
// killed and started again during a watch.
func TestModel(t *testing.T) {
	env := needSugar(t)
	f := newFixture(t, outDir(t))
	control := f.serveControl(t)
	runPython(t, f, "test_model", append(env, "SUGARTEST_CONTROL="+control))
}

// The view, loaded the way Sugar's control panel loads it, under Xvfb:
// idle, check, upgrade with progress, ready, restart; screenshots of each.
func TestView(t *testing.T) {
	env := needSugar(t)
	f := newFixture(t, outDir(t))
	control := f.serveControl(t)
	display := startXvfb(t, f.out)
	runPython(t, f, "test_view", append(env, "SUGARTEST_CONTROL="+control, "DISPLAY="+display))
}

// needSugar skips outside `make sugartest`, which sets UPGRADE_SUGAR=1 and
// installs the section into UPGRADE_SUGAR_DESTDIR; there a missing piece
// is a failure, not a skip.
func needSugar(t *testing.T) []string {
	t.Helper()
	if os.Getenv("UPGRADE_SUGAR") == "" {
		t.Skip("Sugar tests: run `make sugartest` (installs the section, needs python3-jarabe and Xvfb)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("Sugar tests need root: the daemons own system names on the test bus")
	}
	dest := os.Getenv("UPGRADE_SUGAR_DESTDIR")
	section := filepath.Join(dest, "usr/share/sugar/extensions/cpsection/systemupdate/view.py")
	if _, err := os.Stat(section); err != nil {
		t.Fatalf("UPGRADE_SUGAR_DESTDIR=%q: %v (make sugartest installs the section there)", dest, err)
	}
	for _, p := range []string{python, "/usr/lib/python3/dist-packages/jarabe/controlpanel/gui.py"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v (make deps installs it; scripts/deps.d/sugar.txt)", err)
		}
	}
	return []string{"SUGARTEST_DESTDIR=" + dest}
}

// outDir is where logs and screenshots of test t go: UPGRADE_SUGAR_OUT/<test>
// when set (make sugartest keeps them in build/sugartest), else a temp dir.
func outDir(t *testing.T) string {
	base := os.Getenv("UPGRADE_SUGAR_OUT")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, t.Name())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runPython runs one unittest module of contrib/sugar/tests and fails t if
// it fails; its output goes to the test log and to out/<module>.log.
func runPython(t *testing.T, f *fixture, module string, env []string) {
	t.Helper()
	root, err := testbus.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir() // dconf writes here
	ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
	defer cancel()
	// Sugar 0.120 uses many GTK calls deprecated since; their warnings
	// would bury the test output.
	cmd := exec.CommandContext(ctx, python, "-W", "ignore::DeprecationWarning", "-m", "unittest", "-v", module)
	cmd.Dir = filepath.Join(root, "contrib", "sugar", "tests")
	cmd.Env = append(f.bus.Env(), env...)
	cmd.Env = append(cmd.Env, "HOME="+home, "NO_AT_BRIDGE=1", "LANG=C.UTF-8", "LANGUAGE=",
		"PYTHONDONTWRITEBYTECODE=1", "SUGARTEST_OUT="+f.out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	os.WriteFile(filepath.Join(f.out, module+".log"), out, 0o644)
	t.Logf("%s:\n%s", module, out)
	if err != nil {
		t.Fatalf("%s failed: %v (daemon logs in %s)", module, err, f.out)
	}
}

// startXvfb runs a virtual X server on a free display and returns ":N".
func startXvfb(t *testing.T, out string) string {
	t.Helper()
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Fatalf("Xvfb: %v (make deps installs xvfb)", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// -displayfd picks a free display and writes its number once the
	// server accepts clients.
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1200x900x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{pw}
	logf, err := os.Create(filepath.Join(out, "Xvfb.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "" {
			t.Fatalf("Xvfb did not start")
		}
		return ":" + s
	case <-time.After(60 * time.Second):
		t.Fatalf("Xvfb not ready after 60 s")
	}
	return ""
}
