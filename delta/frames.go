package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"

	"laptop.org/upgrade/errdefs"
)

// A delta is applied frame by frame: each frame (at most PieceSize of
// output) is read whole and decoded with DecodeAll straight into a reused
// buffer. The streaming decoder instead keeps a history ring as large as
// the window the frame declares, which for a delta is the dictionary's
// size rounded up (32 MiB for a 28 MB executable, 64 MiB with a second
// base) although a frame references at most PieceSize of its own output:
// rings that size, written lap after lap, made the resident set grow by
// tens of MiB per worker.

// maxFrame bounds a compressed frame: PieceSize of content can only grow by
// block headers when stored raw (3 bytes per 128 KiB block) and the frame
// header and checksum.
const maxFrame = PieceSize + 64<<10

// applyFrames decodes the frames of r with dec (its dictionary set) into w.
func applyFrames(dec *zstd.Decoder, r io.Reader, w io.Writer, maxOut int64) (int64, error) {
	fb := getFrameBuf(r, maxOut > smallOut)
	defer putFrameBuf(fb)
	br := fb.br
	var n int64
	for {
		in, err := readFrame(br, fb.in[:0])
		fb.in = in[:0]
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		out, err := dec.DecodeAll(in, fb.out[:0])
		fb.out = out[:0] // grown to the largest frame so far
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return n, fmt.Errorf("delta frame over %d bytes: %w", PieceSize, errdefs.ErrTooLarge)
			}
			return n, fmt.Errorf("decode: %v: %w", err, errdefs.ErrCorrupt)
		}
		if n += int64(len(out)); n > maxOut {
			return n, fmt.Errorf("decoded data over %d bytes: %w", maxOut, errdefs.ErrTooLarge)
		}
		if _, err := w.Write(out); err != nil {
			return n, err
		}
	}
}

// readFrame appends the next zstd frame of br to buf: the frame header,
// the blocks (walked by their headers), the checksum. io.EOF means no
// frame starts here.
func readFrame(br *bufio.Reader, buf []byte) ([]byte, error) {
	corrupt := func(why string) ([]byte, error) {
		return buf, fmt.Errorf("delta frame: %s: %w", why, errdefs.ErrCorrupt)
	}
	take := func(k int) ([]byte, error) {
		if len(buf)+k > maxFrame {
			return nil, fmt.Errorf("delta frame over %d bytes: %w", maxFrame, errdefs.ErrTooLarge)
		}
		start := len(buf)
		buf = slices.Grow(buf, k)[:start+k]
		if _, err := io.ReadFull(br, buf[start:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("delta frame cut short: %w", errdefs.ErrCorrupt)
			}
			return nil, err
		}
		return buf[start:], nil
	}
	if _, err := br.Peek(1); err == io.EOF {
		return buf, io.EOF
	}
	h, err := take(5)
	if err != nil {
		return buf, err
	}
	if binary.LittleEndian.Uint32(h) != 0xFD2FB528 {
		return corrupt("bad magic")
	}
	fhd := h[4]
	if fhd&0x08 != 0 {
		return corrupt("reserved bit set")
	}
	single := fhd&0x20 != 0
	n := [4]int{0, 1, 2, 4}[fhd&3] // dictionary id
	if !single {
		n++ // window descriptor
	}
	n += [4]int{0, 2, 4, 8}[fhd>>6] // content size
	if single && fhd>>6 == 0 {
		n++
	}
	if _, err := take(n); err != nil {
		return buf, err
	}
	for {
		bh, err := take(3)
		if err != nil {
			return buf, err
		}
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		last, typ, size := v&1 != 0, (v>>1)&3, int(v>>3)
		switch typ {
		case 1: // RLE: one byte repeated size times
			size = 1
		case 3:
			return corrupt("reserved block type")
		}
		if size > 128<<10 {
			return corrupt("block over 128 KiB")
		}
		if _, err := take(size); err != nil {
			return buf, err
		}
		if last {
			break
		}
	}
	if fhd&0x04 != 0 {
		if _, err := take(4); err != nil {
			return buf, err
		}
	}
	return buf, nil
}
