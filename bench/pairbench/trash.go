package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Resets between runs move old results into a trash directory instead of
// deleting them, and the trash is emptied only when the next benchmark of
// the pair starts, followed by a wait.
// This machine's root filesystem has no journal, and ext4 then refuses to
// reuse an inode freed in the last 60 s (300 s while its table block is
// dirty): every file creation scans past all of them. A reset that deleted
// the last run's thousands of files made the next run's creations 10-15x
// slower (0.6 ms instead of 40 µs each) — a cost of the benchmark, not of
// the contender, and it hit whoever ran right after a large delete.
type trash struct {
	dir string
	n   atomic.Int64
}

// newTrash empties the trash the last run left (emptying it at the end
// would slow whatever benchmark runs next) and, if there was one, waits out
// the reuse window.
func newTrash(work string) *trash {
	t := &trash{dir: filepath.Join(work, "trash")}
	if _, err := os.Stat(t.dir); err == nil {
		log.Printf("emptying the trash of the last run, then waiting 90 s (ext4 inode reuse window)")
		check(os.RemoveAll(t.dir))
		time.Sleep(90 * time.Second)
	}
	check(os.MkdirAll(t.dir, 0o755))
	return t
}

// put moves path (if it exists) into the trash.
func (t *trash) put(path string) {
	if _, err := os.Lstat(path); err != nil {
		return
	}
	dst := filepath.Join(t.dir, fmt.Sprint(t.n.Add(1)))
	check(os.Rename(path, dst))
}
