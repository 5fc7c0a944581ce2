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
	if err := r.MigrateSeen("stable"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.SeenIndex()); !os.IsNotExist(err) {
		t.Errorf("the old file is still there: %v", err)
	}
	// A record of the format before TUF moves, and holds no TUF state.
	got, err := loadSeen(r, "stable")
	if err != nil || got == nil || got.Timestamp != nil {
		t.Fatalf("stable after migration: %+v, %v; want an empty record", got, err)
	}
	if err := saveSeen(r, "stable", repo.Seen{Timestamp: []byte(`{"signed":{"version":7}}`)}); err != nil {
		t.Fatal(err)
	}
	beta, err := loadSeen(r, "beta")
	if err != nil || beta != nil {
		t.Fatalf("beta: %+v, %v; want none seen", beta, err)
	}
	if err := saveSeen(r, "beta", repo.Seen{Timestamp: []byte(`{"signed":{"version":2}}`)}); err != nil {
		t.Fatal(err)
	}
	beta, _ = loadSeen(r, "beta")
	stable, _ := loadSeen(r, "stable")
	if diff := cmp.Diff([]int64{2, 7}, []int64{repo.MetaVersionOf(beta.Timestamp), repo.MetaVersionOf(stable.Timestamp)}); diff != "" {
		t.Errorf("serials (-want +got):\n%s", diff)
	}
}
