package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCpioExtracts checks the archive against cpio(1), the reference reader.
func TestCpioExtracts(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed (make deps installs it)")
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, r := range []Record{
		{Name: "dir", Mode: TypeDir | 0o755},
		{Name: "dir/file", Mode: TypeReg | 0o644, Data: []byte("hello")},
		{Name: "dir/link", Mode: TypeLink | 0o777, Data: []byte("file")},
		{Name: "odd", Mode: TypeReg | 0o755, Data: []byte("abc")},
	} {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(Record{Name: "odd", Mode: TypeReg}); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	got := map[string]string{}
	for _, n := range []string{"dir/file", "odd"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		got[n] = string(b)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "dir/link")); l != "file" {
		t.Errorf("link -> %q", l)
	}
	if diff := cmp.Diff(map[string]string{"dir/file": "hello", "odd": "abc"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
