package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/internal/testbus"
)

// binDir holds upgraded, securityd, upgradectl and upgrade-publish:
// $UPGRADE_BIN (make gotest builds them there) or a build made once per run.
var binDir string

// nsEnv marks the test binary running inside its private mount namespace;
// its value is the directory the tmpfs is mounted on.
const nsEnv = "UPGRADE_E2E_TMPFS"

// TestMain runs the tests in a private mount namespace with every
// temporary file (roots, repositories, buses) on a tmpfs.
//
// Why: the engine and securityd call syncfs, which flushes the whole
// filesystem — on this shared machine, the other engineers' writes too. On
// the disk a test took 5 to 10 times longer and varied as much; on a tmpfs
// it measures the daemons, not the neighbours. These tests are about
// processes and the bus (kill -9 loses no page cache); power cuts are the
// VM tests' business. The namespace makes cleanup certain: when the last
// process in it exits, the tmpfs is gone, even after a test timeout.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: these tests own org.laptop.* on a private bus, switch users and mount: run them as root")
		os.Exit(1)
	}
	if os.Getenv(nsEnv) == "" {
		os.Exit(reexec())
	}
	os.Exit(run(m))
}

// reexec runs this test binary again, with the same arguments, in a new
// mount namespace, and returns its exit code.
func reexec() int {
	dir, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// The tmpfs is mounted only inside the namespace: here dir stays empty.
	defer os.Remove(dir)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), nsEnv+"="+dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "e2e: run the tests in a mount namespace:", err)
	return 1
}

// run is the test binary inside the namespace.
func run(m *testing.M) int {
	dir := os.Getenv(nsEnv)
	// mode 0755: nobody must reach the bus sockets under it.
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size=4g"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: mount tmpfs:", err)
		return 1
	}
	os.Setenv("TMPDIR", dir)
	binDir = os.Getenv("UPGRADE_BIN")
	if binDir == "" {
		binDir = filepath.Join(dir, "bin")
		if err := buildBinaries(binDir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	sharedDir = filepath.Join(dir, "repos")
	if err := os.Mkdir(sharedDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// buildBinaries builds the binaries the tests run into dir, which every
// user may read (the tests run upgradectl as nobody).
func buildBinaries(dir string) error {
	root, err := testbus.RepoRoot()
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/upgraded", "./cmd/upgrade-worker", "./cmd/securityd", "./cmd/upgradectl", "./cmd/upgrade-publish", "./cmd/init")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}
