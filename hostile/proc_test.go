package hostile

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"laptop.org/upgrade/bootptr"
	"laptop.org/upgrade/repo/sigkey"
	"laptop.org/upgrade/security"
)

var builtBin struct {
	once sync.Once
	dir  string
	err  error
}

// binary returns the path of cmd/<name>: from $UPGRADE_BIN (make test sets
// it to ./bin), else built once into a temp dir.
func binary(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv("UPGRADE_BIN"); d != "" {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("UPGRADE_BIN set but %v (make build)", err)
		}
		return p
	}
	builtBin.once.Do(func() {
		builtBin.dir, builtBin.err = os.MkdirTemp("", "hostile-bin-")
		if builtBin.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", builtBin.dir+"/", "../cmd/upgraded", "../cmd/upgrade-worker")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			builtBin.err = err
			t.Logf("%s", out)
		}
	})
	if builtBin.err != nil {
		t.Fatal(builtBin.err)
	}
	return filepath.Join(builtBin.dir, name)
}

// writeKeys puts the fixture's public key into a keys directory.
func (w *world) writeKeys() string {
	w.t.Helper()
	dir := w.t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "test.pub"), sigkey.MarshalPublic(w.fix.key.Public()), 0644); err != nil {
		w.t.Fatal(err)
	}
	return dir
}

// onceCmd is `upgraded --once --activate` against the world's server.
func (w *world) onceCmd(keys string, extra ...string) *exec.Cmd {
	args := append([]string{"--once", "--activate", "--root", w.root, "--keys", keys, "--mirror", w.srv.URL}, extra...)
	return exec.Command(binary(w.t, "upgraded"), args...)
}

// checkPointer asserts invariant 2: the boot pointer's next slot, and its
// fallback, verify completely with the security service's own checks.
func (w *world) checkPointer() bootptr.Pointer {
	w.t.Helper()
	p, err := bootptr.Read(w.cfg.Root.BootPointer())
	if err != nil {
		w.t.Fatalf("boot pointer: %v", err)
	}
	sec := &security.Service{Root: w.cfg.Root, Keys: w.fix.keys}
	if _, err := sec.Verify(context.Background(), p.Next); err != nil {
		w.t.Fatalf("boot pointer %+v names slot %s next, which does not verify: %v", p, p.Next, err)
	}
	if _, err := sec.Verify(context.Background(), p.Good); err != nil {
		w.t.Fatalf("boot pointer %+v falls back to slot %s, which does not verify: %v", p, p.Good, err)
	}
	return p
}
