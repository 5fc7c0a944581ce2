// Package cpio writes the "newc" cpio format the kernel unpacks as an
// initramfs. Writing it here keeps the image reproducible (fixed owners,
// times and inode numbers) and needs no cpio(1) on the build machine.
package cpio

import (
	"fmt"
	"io"
)

// Mode bits of the file types the image holds.
const (
	TypeDir  = 0o040000
	TypeReg  = 0o100000
	TypeLink = 0o120000
	TypeChar = 0o020000
)

// Writer writes newc records. Close writes the trailer.
type Writer struct {
	w     io.Writer
	ino   uint32
	off   int64
	err   error
	names map[string]bool
}

func NewWriter(w io.Writer) *Writer { return &Writer{w: w, names: map[string]bool{}} }

// Record is one entry: Name without a leading slash; Data for a file or the
// target of a symlink.
type Record struct {
	Name         string
	Mode         uint32 // type | permissions
	Data         []byte
	RMajor, RMin uint32 // device numbers of a char/block node
}

func (w *Writer) Write(r Record) error {
	if w.err != nil {
		return w.err
	}
	if w.names[r.Name] {
		return fmt.Errorf("cpio: duplicate entry %q", r.Name)
	}
	w.names[r.Name] = true
	w.ino++
	nlink := 1
	if r.Mode&0o170000 == TypeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		w.ino, r.Mode, 0, 0, nlink, 0, len(r.Data), 0, 0, r.RMajor, r.RMin, len(r.Name)+1, 0)
	w.put([]byte(hdr))
	w.put([]byte(r.Name + "\x00"))
	w.pad()
	w.put(r.Data)
	w.pad()
	return w.err
}

// Close writes the trailer record; it does not close the underlying writer.
func (w *Writer) Close() error {
	delete(w.names, "TRAILER!!!")
	return w.Write(Record{Name: "TRAILER!!!"})
}

func (w *Writer) put(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	w.err = err
}

func (w *Writer) pad() {
	if n := w.off % 4; n != 0 {
		w.put(make([]byte, 4-n))
	}
}
