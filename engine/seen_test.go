package engine

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// TestSeenPerChannel: each channel keeps its own last-seen serial (a
// switch to a channel with lower serials is not a rollback), and the one
// global file of earlier versions becomes the configured channel's.
func TestSeenPerChannel(t *testing.T) {
	r, err := layout.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.StateDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.SeenIndex(), []byte(`{"serial":7,"sha256":"`+strings.Repeat("a", 64)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MigrateSeen(r, "stable"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.SeenIndex()); !os.IsNotExist(err) {
		t.Errorf("the old file is still there: %v", err)
	}
	got, err := loadSeen(r, "stable")
	if err != nil || got == nil || got.Serial != 7 {
		t.Fatalf("stable after migration: %+v, %v; want serial 7", got, err)
	}
	beta, err := loadSeen(r, "beta")
	if err != nil || beta != nil {
		t.Fatalf("beta: %+v, %v; want none seen", beta, err)
	}
	if err := saveSeen(r, "beta", repo.SeenIndex{Serial: 2}); err != nil {
		t.Fatal(err)
	}
	beta, _ = loadSeen(r, "beta")
	stable, _ := loadSeen(r, "stable")
	if diff := cmp.Diff([]uint64{2, 7}, []uint64{beta.Serial, stable.Serial}); diff != "" {
		t.Errorf("serials (-want +got):\n%s", diff)
	}
}
