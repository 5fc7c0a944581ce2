package hostile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/slotfs"
)

// tmpfs mounts a private tmpfs with the given options for the test.
func tmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount tmpfs %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func freeSpace(t *testing.T, dir string) (bytes, inodes int64) {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	return int64(s.Bavail) * int64(s.Bsize), int64(s.Ffree)
}

// TestDiskTooSmall: an upgrade that cannot fit is refused before its
// download, with the numbers in the error, by bytes and by inodes.
func TestDiskTooSmall(t *testing.T) {
	tests := []struct {
		name, opts, msg string
	}{
		// Provisioning version 1 takes ~4 MB; the upgrade needs its new
		// files plus a 16 MB margin.
		{"bytes", "size=20m,nr_inodes=10000", "MB are free"},
		// Provisioning takes ~45 inodes; the upgrade needs ~40 more.
		{"inodes", "size=64m,nr_inodes=90", "inodes but only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorldIn(t, tmpfs(t, tc.opts), 1)
			w.srv.sign(t, w.fix.parsedIndex(t), w.fix.key)
			w.srv.sent.Store(0)
			res, err := engine.Upgrade(context.Background(), w.config(), engine.Options{})
			wantErr(t, err, errdefs.ErrNoSpace, tc.msg)
			t.Logf("refused: %v", err)
			if sent := w.srv.sent.Load(); res == nil || sent >= res.DownloadBytes {
				t.Errorf("server sent %d bytes; the refusal must come before the %d-byte download", sent, res.DownloadBytes)
			}
			if names, _ := os.ReadDir(filepath.Join(w.root, "b")); len(names) != 0 {
				t.Errorf("slot b was written: %d entries", len(names))
			}
			w.checkUntouched()
		})
	}
}

// TestDiskFillsDuringApply: something else fills the disk while the apply
// runs. The upgrade fails cleanly (ErrNoSpace, no temp file left in the
// slot, nothing outside touched), and once the space is back it resumes.
func TestDiskFillsDuringApply(t *testing.T) {
	dir := tmpfs(t, "size=48m,nr_inodes=10000")
	w := newWorldIn(t, dir, 1)
	w.srv.sign(t, w.fix.parsedIndex(t), w.fix.key)
	filler := filepath.Join(dir, "filler")
	var once sync.Once
	var fillErr error
	_, err := engine.Upgrade(context.Background(), w.config(), engine.Options{Progress: func(p engine.Progress) {
		if p.Phase != engine.PhaseApplying {
			return
		}
		once.Do(func() { fillErr = fill(filler) })
	}})
	if fillErr != nil {
		t.Fatal(fillErr)
	}
	wantErr(t, err, errdefs.ErrNoSpace, "no space left on device")
	t.Logf("failed cleanly: %v", err)
	var temps []string
	filepath.WalkDir(filepath.Join(w.root, "b"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), slotfs.TempPrefix) {
			temps = append(temps, p)
		}
		return nil
	})
	if len(temps) > 0 {
		t.Errorf("temp files left in the slot after the failure: %v", temps)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.checkUntouched()
	res, err := engine.Upgrade(context.Background(), w.config(), engine.Options{})
	if err != nil {
		t.Fatalf("after the space came back: %v", err)
	}
	if !res.Resumed {
		t.Errorf("the second run started over instead of resuming")
	}
}

// fill writes path until the filesystem is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill: %w", err)
		}
	}
}
