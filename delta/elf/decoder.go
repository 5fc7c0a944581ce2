package elf

import (
	"bytes"
	"fmt"
	"io"
)

// Decoder undoes Encode as a stream: written the encoded file, it writes
// the original to w, holding the headers (at most 64 KiB) until it knows
// the code segments, then at most one instruction. size is the file's
// length (signed metadata).
type Decoder struct {
	w     io.Writer
	size  uint64
	spans []span
	pos   uint64 // file offset of work[0]
	work  []byte // bytes not written yet
}

// NewDecoder returns a Decoder writing to w a file of size bytes.
func NewDecoder(w io.Writer, size int64) *Decoder {
	return &Decoder{w: w, size: uint64(size)}
}

func (d *Decoder) Write(p []byte) (int, error) {
	d.work = append(d.work, p...)
	if d.spans == nil {
		if len(d.work) < 64 || uint64(len(d.work)) < headerLen(d.work) {
			if len(d.work) > maxHeader || (len(d.work) >= 64 && !Is(d.work)) {
				return 0, fmt.Errorf("headers: %w", ErrNotELF)
			}
			return len(p), nil
		}
		sp, err := spans(d.work, d.size)
		if err != nil {
			return 0, err
		}
		d.spans = sp
	}
	return len(p), d.flush(false)
}

// Close writes what is left.
func (d *Decoder) Close() error {
	if d.spans == nil {
		return fmt.Errorf("file of %d bytes ends in its headers: %w", len(d.work), ErrNotELF)
	}
	return d.flush(true)
}

// flush decodes and writes work up to the last instruction that may not
// be all there yet (all of it when final).
func (d *Decoder) flush(final bool) error {
	b := d.work
	i, s := 0, 0
	for i < len(b) {
		off := d.pos + uint64(i)
		for s < len(d.spans) && d.spans[s].end <= off {
			s++
		}
		if s == len(d.spans) {
			i = len(b)
			break
		}
		sp := &d.spans[s]
		if off < sp.off {
			i += int(min(sp.off-off, uint64(len(b)-i)))
			continue
		}
		n := int(min(maxInst, sp.end-off))
		if i+n > len(b) {
			if !final {
				break
			}
			n = len(b) - i // the file is short: the digest check fails
		}
		k, _ := sp.step(b[i:i+n], sp.vaddr+(off-sp.off), false)
		i += k
	}
	if _, err := d.w.Write(b[:i]); err != nil {
		return err
	}
	d.pos += uint64(i)
	d.work = append(d.work[:0], b[i:]...)
	return nil
}

// Check reports whether Decode(Encode(b)) gives b back, returning the
// encoded file if it does.
func Check(b []byte) ([]byte, bool) {
	enc, err := Encode(b)
	if err != nil {
		return nil, false
	}
	var out bytes.Buffer
	out.Grow(len(b))
	d := NewDecoder(&out, int64(len(enc)))
	if _, err := d.Write(enc); err != nil || d.Close() != nil {
		return nil, false
	}
	return enc, bytes.Equal(out.Bytes(), b)
}
