// Package delta makes and applies binary deltas: a zstd stream whose frames
// are compressed with the old content as a raw dictionary (the same format as
// `zstd --patch-from`), so the zstd CLI or this package can make them and a
// pure-Go client applies them.
//
// The new content is cut into pieces of PieceSize, each its own frame
// encoded against the whole old content: the decoder then needs only the old
// content (mmapped by the caller, never copied) and one piece of window, not
// the whole new file in memory. It costs nothing measurable in size.
package delta

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"laptop.org/upgrade/errdefs"
)

// PieceSize is the amount of new content per frame.
const PieceSize = 4 << 20

// MaxBase is the largest old content a delta can reference (the zstd window,
// 512 MiB, must cover the base plus one piece).
const MaxBase = zstd.MaxWindowSize - PieceSize

func window(base int) int {
	w := zstd.MinWindowSize
	for w < base+PieceSize && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

// Create writes a delta that turns old into the bytes read from newR.
func Create(old []byte, newR io.Reader, w io.Writer) error {
	if len(old) == 0 || len(old) > MaxBase {
		return fmt.Errorf("delta base of %d bytes: %w", len(old), errdefs.ErrInvalidArgument)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderDictRaw(0, old),
		zstd.WithWindowSize(window(len(old))),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	defer enc.Close()
	buf := make([]byte, PieceSize)
	var out []byte
	for first := true; ; first = false {
		n, err := io.ReadFull(newR, buf)
		if n > 0 || first {
			out = enc.EncodeAll(buf[:n], out[:0])
			if _, werr := w.Write(out); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Apply decodes a delta against old into w, producing at most maxOut bytes
// (more is ErrTooLarge: sizes come from signed metadata). The caller checks
// the output's digest.
func Apply(old []byte, d io.Reader, w io.Writer, maxOut int64) (int64, error) {
	if len(old) == 0 || len(old) > MaxBase {
		return 0, fmt.Errorf("delta base of %d bytes: %w", len(old), errdefs.ErrInvalidArgument)
	}
	dec, err := zstd.NewReader(d,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderDictRaw(0, old),
		zstd.WithDecoderMaxWindow(uint64(window(len(old)))))
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	return copyCapped(w, dec, maxOut)
}

// Compress writes a plain zstd stream of r (objects in the repository).
// The window is bounded so that a client decodes with little memory.
func Compress(r io.Reader, w io.Writer) error {
	enc, err := zstd.NewWriter(w,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(ObjectWindow),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, r); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// ObjectWindow is the zstd window of stored objects and the most a client
// will allocate to decode one.
const ObjectWindow = 8 << 20

// Decompress decodes a stored object into w, at most maxOut bytes.
func Decompress(r io.Reader, w io.Writer, maxOut int64) (int64, error) {
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(ObjectWindow))
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	return copyCapped(w, dec, maxOut)
}

func copyCapped(w io.Writer, r io.Reader, maxOut int64) (int64, error) {
	ew := &errWriter{w: w}
	n, err := io.Copy(ew, io.LimitReader(r, maxOut+1))
	if err != nil {
		if ew.err != nil {
			return n, ew.err // writing failed (a full disk), the data may be fine
		}
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return n, fmt.Errorf("decoded data over %d bytes: %w", maxOut, errdefs.ErrTooLarge)
		}
		return n, fmt.Errorf("decode: %v: %w", err, errdefs.ErrCorrupt)
	}
	if n > maxOut {
		return n, fmt.Errorf("decoded data over %d bytes: %w", maxOut, errdefs.ErrTooLarge)
	}
	return n, nil
}

// errWriter remembers the destination's own error, so that a full disk is
// not reported as corrupt data from the repository.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
