package delta

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"laptop.org/upgrade/errdefs"
)

// The client side: applying deltas and decoding objects and packs, with
// decoders reused and memory bounded by the signed sizes.

// Apply decodes a delta against old into w, producing at most maxOut bytes
// (more is ErrTooLarge: sizes come from signed metadata). The caller checks
// the output's digest.
func Apply(old []byte, d io.Reader, w io.Writer, maxOut int64) (int64, error) {
	if len(old) == 0 || len(old) > MaxBase {
		return 0, fmt.Errorf("delta base of %d bytes: %w", len(old), errdefs.ErrInvalidArgument)
	}
	dec, err := patchDecoders.get(nil,
		zstd.WithDecoderDictRaw(0, old),
		zstd.WithDecoderMaxWindow(uint64(window(len(old)))))
	if err != nil {
		return 0, err
	}
	n, err := applyFrames(dec, d, w, maxOut)
	// Forget the dictionary: the caller unmaps it.
	patchDecoders.put(dec, zstd.WithDecoderDictDelete(0))
	return n, err
}

// Decoders are reused: each holds a history ring as large as the window of
// the last frame it decoded (up to tens of MiB for a delta against a large
// executable), and allocating one per file made the heap, and with it the
// resident set, grow with the number of files. A few idle decoders are
// kept; Release frees them (the daemon calls it when a job ends).
type decoderPool struct {
	free chan *zstd.Decoder
	opts []zstd.DOption
}

var (
	patchDecoders = &decoderPool{free: make(chan *zstd.Decoder, 4), opts: []zstd.DOption{
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(PieceSize)}}
	objDecoders = &decoderPool{free: make(chan *zstd.Decoder, 4), opts: []zstd.DOption{
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(ObjectWindow)}}
)

func (p *decoderPool) get(r io.Reader, opts ...zstd.DOption) (*zstd.Decoder, error) {
	select {
	case dec := <-p.free:
		if err := dec.ResetWithOptions(r, opts...); err != nil {
			dec.Close()
			return nil, err
		}
		return dec, nil
	default:
		return zstd.NewReader(r, append(append([]zstd.DOption{}, p.opts...), opts...)...)
	}
}

func (p *decoderPool) put(dec *zstd.Decoder, opts ...zstd.DOption) {
	if dec.ResetWithOptions(nil, opts...) != nil {
		dec.Close()
		return
	}
	select {
	case p.free <- dec:
	default:
		dec.Close()
	}
}

// Release closes the idle decoders and drops the kept frame buffers,
// returning their memory.
func Release() {
	releaseFrameBufs()
	for _, p := range []*decoderPool{patchDecoders, objDecoders} {
		for {
			select {
			case dec := <-p.free:
				dec.Close()
				continue
			default:
			}
			break
		}
	}
}

// NewReader decodes a stored object or pack as a stream, with the same
// window limit as Decompress; reading past maxOut bytes is ErrTooLarge.
func NewReader(r io.Reader, maxOut int64) (io.ReadCloser, error) {
	dec, err := objDecoders.get(r)
	if err != nil {
		return nil, err
	}
	return &cappedReader{dec: dec, left: maxOut, done: func() { objDecoders.put(dec) }}, nil
}

// cappedReader ends a decoded stream at its signed size: one byte more is
// an error. Decoder errors are ErrCorrupt.
type cappedReader struct {
	dec  io.Reader
	left int64
	done func() // returns the decoder, if pooled
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more than allowed is an error, not an end.
		var one [1]byte
		if n, _ := c.dec.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("decoded data over the signed size: %w", errdefs.ErrTooLarge)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.dec.Read(p)
	c.left -= int64(n)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("decode: %v: %w", err, errdefs.ErrCorrupt)
	}
	return n, err
}

func (c *cappedReader) Close() error {
	if c.done != nil {
		c.done()
		c.done = nil
	}
	return nil
}

// Decompress decodes a stored object into w, at most maxOut bytes. The
// decoder writes each block (up to 128 KiB) straight from its history:
// no copy through a 32 KiB buffer, and a quarter of the write calls.
func Decompress(r io.Reader, w io.Writer, maxOut int64) (int64, error) {
	dec, err := objDecoders.get(r)
	if err != nil {
		return 0, err
	}
	defer objDecoders.put(dec)
	cw := &capWriter{w: w, left: maxOut}
	n, err := dec.WriteTo(cw)
	switch {
	case cw.over:
		return n, fmt.Errorf("decoded data over %d bytes: %w", maxOut, errdefs.ErrTooLarge)
	case cw.err != nil:
		return n, cw.err // writing failed (a full disk), the data may be fine
	case err != nil:
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return n, fmt.Errorf("decoded data over %d bytes: %w", maxOut, errdefs.ErrTooLarge)
		}
		return n, fmt.Errorf("decode: %v: %w", err, errdefs.ErrCorrupt)
	}
	return n, nil
}

// capWriter passes at most left bytes to w; more is an error (over), as
// is w's own (err).
type capWriter struct {
	w    io.Writer
	left int64
	over bool
	err  error
}

func (c *capWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		c.over = true
		return 0, errdefs.ErrTooLarge
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}
