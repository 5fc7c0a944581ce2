package engine

import (
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
)

// dict is a delta's dictionary mapped read-only from its base files, in
// delta.Dict's layout (each base but the last padded with zeros to
// delta.DictAlign), without copying a byte: one anonymous reservation of the
// whole length, each file mapped over its part with MAP_FIXED. The zeros
// between bases are untouched anonymous pages (the kernel's zero page).
type dict struct {
	b    []byte
	addr unsafe.Pointer
	size uintptr
}

func mapDict(files ...*os.File) (*dict, error) {
	sizes := make([]int64, len(files))
	for i, f := range files {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if st.Size() == 0 {
			return nil, fmt.Errorf("delta base %s is empty: %w", f.Name(), errdefs.ErrCorrupt)
		}
		sizes[i] = st.Size()
	}
	total := delta.DictSize(sizes...)
	if total > delta.MaxBase {
		return nil, fmt.Errorf("delta bases of %d bytes: %w", total, errdefs.ErrTooLarge)
	}
	page := int64(unix.Getpagesize())
	size := uintptr((total + page - 1) &^ (page - 1))
	addr, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserve %d bytes for delta bases: %w", size, err)
	}
	d := &dict{addr: addr, size: size}
	var off int64
	for i, f := range files {
		at := unsafe.Add(addr, off)
		if _, err := unix.MmapPtr(int(f.Fd()), 0, at, uintptr(sizes[i]), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
			d.close()
			return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
		}
		off = delta.DictSize(off+sizes[i], 0)
	}
	d.b = unsafe.Slice((*byte)(addr), total)
	return d, nil
}

func (d *dict) close() { unix.MunmapPtr(d.addr, d.size) }

// drop lets go of the pages the decoder touched so far. They stay in the
// page cache (they are the base files' pages) but leave this process's
// resident set: without it, patching a 28 MB executable against its old
// version and a second base would hold up to 56 MB of mapped pages at once.
func (d *dict) drop() { unix.Madvise(d.b[:len(d.b):len(d.b)], unix.MADV_DONTNEED) }

// dropEvery is how much output passes between drops (one delta frame).
const dropEvery = delta.PieceSize

// dropper is the output side of a delta: it drops the dictionary's pages
// every dropEvery bytes written.
type dropper struct {
	w    io.Writer
	drop func()
	left int
}

func (w *dropper) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if w.left -= n; w.left <= 0 {
		w.drop()
		w.left = dropEvery
	}
	return n, err
}

// dropTick is how often dropWhile drops a large dictionary's pages.
const dropTick = 3 * time.Millisecond

// dropWhile calls drop every dropTick until the returned function is
// called. Decoding one frame of a delta against a large dictionary
// touches pages all over it, and each fault maps its neighbours too (the
// kernel's fault-around): a frame against a 26 MB executable and a 14 MB
// second base mapped 25 MB of them before the frame's output came back to
// the dropper. The pages stay in the page cache; a dropped page that is
// read again costs a minor fault.
func dropWhile(drop func()) (stop func()) {
	t := time.NewTicker(dropTick)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-t.C:
				drop()
			case <-done:
				return
			}
		}
	}()
	return func() {
		t.Stop()
		close(done)
		<-finished
	}
}
