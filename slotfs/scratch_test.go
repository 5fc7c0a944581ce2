package slotfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestScratch: with a scratch directory, temps are made there and Commit
// renames them into their directory of the slot; Abort removes them; the
// slot never holds a temp name.
func TestScratch(t *testing.T) {
	base := t.TempDir()
	slot, scratch := filepath.Join(base, "b"), filepath.Join(base, "scratch")
	for _, d := range []string{filepath.Join(slot, "usr"), scratch} {
		if err := os.MkdirAll(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(slot)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.SetScratch(scratch); err != nil {
		t.Fatal(err)
	}
	names := func(dir string) []string {
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range es {
			n = append(n, e.Name())
		}
		return n
	}
	tmp, err := r.CreateTemp("usr")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(scratch); len(got) != 1 || names(filepath.Join(slot, "usr")) != nil {
		t.Fatalf("temp in scratch %v, slot %v", got, names(filepath.Join(slot, "usr")))
	}
	if _, err := tmp.WriteString("new\n"); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Commit("file"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"file"}, names(filepath.Join(slot, "usr"))); diff != "" {
		t.Errorf("slot after commit (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(slot, "usr", "file")); err != nil || string(b) != "new\n" {
		t.Errorf("committed file: %q, %v", b, err)
	}
	tmp, err = r.CreateTemp("")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Abort()
	if got := names(scratch); got != nil {
		t.Errorf("scratch after commit and abort: %v", got)
	}
	if diff := cmp.Diff([]string{"usr"}, names(slot)); diff != "" {
		t.Errorf("slot top (-want +got):\n%s", diff)
	}
}
