package deflate

import (
	"bytes"
	"fmt"
	"io"

	"laptop.org/upgrade/delta"
)

// MaxPuff bounds the puff of either side of a delta: a client holds the
// old file's puff in memory (the new one streams through), so this is
// what a deflate-aware delta costs it beyond a plain one. Puffs are about
// 1.7 times the .gz on man pages and changelogs; files whose puff is
// larger get plain deltas.
const MaxPuff = 16 << 20

// CreateDelta writes a delta that turns the gzip or zlib file old into
// new: a plain delta (package delta) from old's puff to new's. Any file
// that does not puff, or whose puff does not re-encode to exactly its
// bytes, is an error wrapping ErrNotDeflate, ErrUnsupported or
// ErrTooLarge, and the caller makes a plain delta instead.
func CreateDelta(old, new []byte, w io.Writer) error {
	po, err := Puff(old, MaxPuff)
	if err != nil {
		return fmt.Errorf("old file: %w", err)
	}
	pn, err := Puff(new, MaxPuff)
	if err != nil {
		return fmt.Errorf("new file: %w", err)
	}
	var back bytes.Buffer
	if err := Huff(bytes.NewReader(pn), &back, int64(len(new))); err != nil || !bytes.Equal(back.Bytes(), new) {
		return fmt.Errorf("new file does not re-encode exactly (%v): %w", err, ErrUnsupported)
	}
	return delta.Create(po, bytes.NewReader(pn), w)
}

// ApplyDelta applies a delta made by CreateDelta to old, writing at most
// maxOut bytes to w. The caller checks the result's digest, as for any
// delta.
func ApplyDelta(old []byte, d io.Reader, w io.Writer, maxOut int64) error {
	po, err := Puff(old, MaxPuff)
	if err != nil {
		return fmt.Errorf("puffing the delta's base: %w", err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := delta.Apply(po, d, pw, MaxPuff)
		pw.CloseWithError(err)
		done <- err
	}()
	// A failed delta closes the pipe with its error, which Huff returns.
	err = Huff(pr, w, maxOut)
	pr.CloseWithError(fmt.Errorf("re-encoding stopped: %w", ErrBadPuff))
	if aerr := <-done; err == nil {
		err = aerr
	}
	return err
}
