package engine_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
)

// rootNode is what a write anywhere under the root changes: content,
// inode, metadata, and the times (a file created and removed again still
// moves its directory's mtime). Access times are left out: reads move them.
type rootNode struct {
	Mode             uint32
	Ino, Size, Nlink uint64
	Mtime, Ctime     unix.Timespec
	Content, Target  string
}

// rootSnapshot records every path under dir.
func rootSnapshot(t *testing.T, dir string) map[string]rootNode {
	t.Helper()
	out := map[string]rootNode{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := rootNode{Mode: st.Mode, Ino: st.Ino, Size: uint64(st.Size), Nlink: uint64(st.Nlink), Mtime: st.Mtim, Ctime: st.Ctim}
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Content = digest.Of(b).String()
		case d.Type()&fs.ModeSymlink != 0:
			n.Target, _ = os.Readlink(p)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCheckWritesNothing: a check leaves the whole root byte for byte as it
// was, with a newer version to report, with it already built in the
// inactive slot, and with no inactive slot at all.
func TestCheckWritesNothing(t *testing.T) {
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	check := func(t *testing.T, cfg *engine.Config, root string, wantReady bool) {
		t.Helper()
		before := rootSnapshot(t, root)
		res, upToDate, err := engine.Check(context.Background(), cfg, 0)
		if err != nil || upToDate || res.Version != 2 || res.AlreadyReady != wantReady {
			t.Fatalf("check: %+v, up to date %v, %v; want version 2, already ready %v", res, upToDate, err, wantReady)
		}
		if diff := cmp.Diff(before, rootSnapshot(t, root)); diff != "" {
			t.Errorf("the check changed the root (-before +after):\n%s", diff)
		}
	}

	t.Run("newer version", func(t *testing.T) {
		root, cfg := rp.Provision(t, url, 1)
		check(t, cfg, root, false)
	})
	t.Run("no inactive slot", func(t *testing.T) {
		root, cfg := rp.Provision(t, url, 1)
		if err := os.Remove(cfg.Root.Slot(layout.SlotB)); err != nil {
			t.Fatal(err)
		}
		check(t, cfg, root, false)
	})
	t.Run("already built", func(t *testing.T) {
		root, cfg := rp.Provision(t, url, 1)
		if _, err := engine.Upgrade(context.Background(), cfg, engine.Options{}); err != nil {
			t.Fatal(err)
		}
		check(t, cfg, root, true)
	})
}

// TestStepErrors: an upgrade's error names the step that failed.
func TestStepErrors(t *testing.T) {
	rp := testrepo.New(t, 2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	_, cfg := rp.Provision(t, url, 2)
	_, err := engine.Upgrade(context.Background(), cfg, engine.Options{})
	var se *engine.StepError
	if !errors.As(err, &se) || se.Step != "check" {
		t.Fatalf("up to date: %v; want the check step's error", err)
	}
}
