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

// Compress writes a plain zstd stream of r (objects in the repository).
// The window is bounded so that a client decodes with little memory.
func Compress(r io.Reader, w io.Writer) error { return CompressSize(r, -1, w) }

// CompressSize is Compress for content of a known size (-1: unknown): the
// frame then records the size, and a small object gets a window no larger
// than itself, so its decoder needs no more memory than the content.
func CompressSize(r io.Reader, size int64, w io.Writer) error {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(ObjectWindow),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	enc.ResetContentSize(w, size)
	if _, err := io.Copy(enc, r); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// ObjectWindow is the zstd window of stored objects and the most a client
// will allocate to decode one.
const ObjectWindow = 8 << 20
