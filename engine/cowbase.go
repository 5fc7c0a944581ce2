package engine

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/delta/elf"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo"
)

// cowBase is an ELF delta's base mapped copy-on-write and transformed in
// place by package elf, instead of transformed into a copy on the heap:
// only the pages the transform changes become this process's own memory
// (it tracks them, as an elf.Tracker), and every other page, the file's,
// is dropped from the resident set once the transform or the decoder has
// passed it (read again from the page cache when needed). A copy held a
// 26 MB executable twice, its heap copy and its mapped pages, and pushed
// the heap far past the job's soft limit.
type cowBase struct {
	b     []byte
	page  int
	dirty []uint64 // a bit per page the transform wrote
	from  int      // where the current pass's undropped pages start
}

func mapCOW(f *os.File) (*cowBase, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch size := st.Size(); {
	case size == 0:
		return nil, fmt.Errorf("delta base %s is empty: %w", f.Name(), errdefs.ErrCorrupt)
	case size > elf.MaxSize:
		return nil, fmt.Errorf("delta base over %d bytes: %w", elf.MaxSize, errdefs.ErrTooLarge)
	}
	// MAP_PRIVATE: the transform's writes never reach the file, which is
	// the running slot's (and shares its inode with the clone's links).
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	page := unix.Getpagesize()
	pages := (len(b) + page - 1) / page
	return &cowBase{b: b, page: page, dirty: make([]uint64, (pages+63)/64)}, nil
}

func (c *cowBase) close() { unix.Munmap(c.b) }

// Wrote marks the pages of [off, off+n) as the only copy of their bytes.
func (c *cowBase) Wrote(off, n int) {
	for p := off / c.page; p <= (off+n-1)/c.page; p++ {
		c.dirty[p/64] |= 1 << (p % 64)
	}
}

// Passed drops the clean pages the current pass has left behind.
func (c *cowBase) Passed(off int) {
	if off < c.from {
		c.from = 0 // a new pass
	}
	c.dropClean(c.from/c.page, off/c.page)
	c.from = off
}

// dropClean drops the pages in [lo, hi) that were not written, a run of
// them per call.
func (c *cowBase) dropClean(lo, hi int) {
	hi = min(hi, (len(c.b)+c.page-1)/c.page)
	for p := lo; p < hi; {
		if c.dirty[p/64]&(1<<(p%64)) != 0 {
			p++
			continue
		}
		q := p + 1
		for q < hi && c.dirty[q/64]&(1<<(q%64)) == 0 {
			q++
		}
		unix.Madvise(c.b[p*c.page:min(q*c.page, len(c.b))], unix.MADV_DONTNEED)
		p = q
	}
}

// dropAll drops every clean page (called as the decoder goes).
func (c *cowBase) dropAll() { c.dropClean(0, len(c.dirty)*64) }

// applyELF applies a delta of codec CodecELF or CodecELFMap to base: the
// transform of package elf in place on a cowBase, then the plain delta
// (through elf's decoder for CodecELF). The caller checks the result's
// digest.
func (ap *applier) applyELF(codec string, base *os.File, d io.Reader, w io.Writer, size int64) error {
	cb, err := mapCOW(base)
	if err != nil {
		return err
	}
	defer cb.close()
	if len(cb.b) >= bigDict/4 {
		defer ap.takeBig(len(cb.b))()
	}
	out := w
	var dec *elf.Decoder
	if codec == repo.CodecELFMap {
		br := bufio.NewReader(d)
		sh, err := elf.ReadShifts(br)
		if err != nil {
			return err
		}
		if err := elf.ProjectInPlace(cb.b, sh, cb); err != nil {
			return fmt.Errorf("projecting the delta's base: %w", err)
		}
		d = br
	} else {
		if err := elf.EncodeInPlace(cb.b, cb); err != nil {
			return fmt.Errorf("encoding the delta's base: %w", err)
		}
		dec = elf.NewDecoder(w, size)
		out = dec
	}
	cb.dropAll()
	if len(cb.b) >= bigDict/4 {
		defer dropWhile(cb.dropAll)()
	}
	if _, err := delta.Apply(cb.b, d, &dropper{w: out, drop: cb.dropAll, left: dropEvery}, size); err != nil {
		return err
	}
	if dec != nil {
		return dec.Close()
	}
	return nil
}
