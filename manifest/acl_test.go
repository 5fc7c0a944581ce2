package manifest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestScanACL: POSIX ACLs (access on a file, access and default on a
// directory) are tracked like security.capability, so they are published,
// applied and verified; a tree without them scans as before.
func TestScanACL(t *testing.T) {
	dir := t.TempDir()
	f, d, plain := filepath.Join(dir, "f"), filepath.Join(dir, "d"), filepath.Join(dir, "plain")
	for _, p := range []string{f, plain} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-m", "u:4242:rw", f}, {"-m", "g:4243:rx", "-d", "-m", "u:4244:rx", d}} {
		if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
			t.Fatalf("setfacl %v: %v %s (the acl package: make deps)", args, err, out)
		}
	}
	m, err := Scan(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	names := func(p string) (out []string) {
		for _, x := range m.Find(p).Xattrs {
			out = append(out, x.Name)
		}
		return out
	}
	for p, want := range map[string][]string{"f": {XattrACLAccess}, "d": {XattrACLAccess, XattrACLDefault}, "plain": nil} {
		if got := names(p); len(got) != len(want) || (len(want) > 0 && got[len(got)-1] != want[len(want)-1]) {
			t.Errorf("%s: xattrs %v, want %v", p, got, want)
		}
	}
	if err := m.Validate(DefaultPolicy); err != nil {
		t.Fatalf("a manifest with ACLs must validate: %v", err)
	}
	if _, err := Decode(m.Bytes(), DefaultPolicy); err != nil {
		t.Fatalf("round trip: %v", err)
	}
}
