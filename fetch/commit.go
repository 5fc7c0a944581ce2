package fetch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/atomicfile"
)

// Batch limits: a batch is made durable by one syncfs when it holds this
// many blobs or bytes, or when Fetch ends.
const (
	batchBlobs = 256
	batchBytes = 64 << 20
)

// committer makes verified partials final in batches, as committing blob
// by blob (fsync the file, rename, fsync the directory) costs two journal
// commits per blob. A batch costs one syncfs, the renames, and one
// directory fsync. The invariant is
// unchanged — a final name exists only for a complete, verified, durable
// file — since every rename follows the syncfs of its data; what a crash
// can now leave behind is more verified .partial files, which are rehashed
// and committed by the next run. Each partial stays open and locked until
// it is renamed, so no other downloader touches it meanwhile.
type committer struct {
	dir     string
	mu      sync.Mutex // guards batch and bytes
	batch   []*partial
	bytes   int64
	flushMu sync.Mutex // one flush at a time, in order
}

// add checks p against b (size and digest) and queues it; a full batch is
// flushed by the caller's goroutine. p belongs to the committer from here,
// whatever the result.
func (c *committer) add(p *partial, b Blob) error {
	if err := p.check(b); err != nil {
		p.close()
		return err
	}
	c.mu.Lock()
	c.batch = append(c.batch, p)
	c.bytes += b.Size
	full := len(c.batch) >= batchBlobs || c.bytes >= batchBytes
	c.mu.Unlock()
	if full {
		return c.flush()
	}
	return nil
}

// flush commits the queued partials: syncfs, renames, directory fsync.
func (c *committer) flush() error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	batch := c.batch
	c.batch, c.bytes = nil, 0
	c.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	defer func() {
		for _, p := range batch {
			p.close()
		}
	}()
	if err := syncFS(c.dir, batch); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, p := range batch {
		if err := os.Rename(p.path(), filepath.Join(p.dir, p.name)); err != nil {
			return fmt.Errorf("commit %s: rename: %w", p.name, err)
		}
	}
	// Past the point of no return: the files are in place and verified.
	if err := atomicfile.SyncDir(c.dir); err != nil {
		return fmt.Errorf("commit: fsync dir: %w", err)
	}
	return nil
}

// syncFS makes the data of every partial durable with one syncfs of the
// staging filesystem, or one fsync per file where syncfs is unavailable.
func syncFS(dir string, batch []*partial) error {
	err := atomicfile.SyncFS(dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	for _, p := range batch {
		if err := p.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p.name, err)
		}
	}
	return nil
}
