package deflate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Huff writes the file a puff describes, streaming: it holds one block's
// codes and a write buffer, never the file. Writing more than maxOut bytes
// is ErrTooLarge; a puff that describes no valid stream is ErrBadPuff.
func Huff(r io.Reader, w io.Writer, maxOut int64) error {
	bw := bufio.NewWriterSize(&capWriter{w: w, left: maxOut}, 32<<10)
	h := &huffer{r: bufio.NewReaderSize(r, 32<<10), w: bw}
	err := h.file()
	if err == nil {
		err = bw.Flush()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("puff cut short: %w", ErrBadPuff)
	}
	return err
}

type capWriter struct {
	w    io.Writer
	left int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, ErrTooLarge
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}

type huffer struct {
	r     *bufio.Reader
	w     *bufio.Writer
	buf   uint64 // bits not yet written, LSB first
	nbits uint
	err   error // the first write error
}

func badPuff(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, ErrBadPuff)...)
}

func (h *huffer) bits(v uint32, n uint) {
	h.buf |= uint64(v) << h.nbits
	h.nbits += n
	for h.nbits >= 8 {
		if err := h.w.WriteByte(byte(h.buf)); err != nil && h.err == nil {
			h.err = err
		}
		h.buf >>= 8
		h.nbits -= 8
	}
}

// pad writes the puff's padding bits up to the byte boundary.
func (h *huffer) pad() error {
	v, err := h.r.ReadByte()
	if err != nil {
		return err
	}
	n := (8 - h.nbits%8) % 8
	if uint32(v)>>n != 0 {
		return badPuff("padding %#x over %d bits", v, n)
	}
	h.bits(uint32(v), n)
	return nil
}

func (h *huffer) file() error {
	var m [4]byte
	if _, err := io.ReadFull(h.r, m[:]); err != nil || !bytes.Equal(m[:], magic) {
		return badPuff("no puff magic")
	}
	for {
		t, err := h.r.ReadByte()
		if err != nil {
			return err
		}
		switch t {
		case segEnd:
			if _, err := h.r.ReadByte(); err != io.EOF {
				return badPuff("data after the end")
			}
			return h.err
		case segRaw:
			n, err := binary.ReadUvarint(h.r)
			if err != nil {
				return err
			}
			if _, err := io.CopyN(h.w, h.r, int64(n)); err != nil {
				return err
			}
		case segDeflate:
			if err := h.stream(); err != nil {
				return err
			}
		default:
			return badPuff("segment %#x", t)
		}
		if h.err != nil {
			return h.err
		}
	}
}

func (h *huffer) stream() error {
	for {
		hdr, err := h.r.ReadByte()
		if err != nil {
			return err
		}
		if hdr > 7 {
			return badPuff("block header %#x", hdr)
		}
		h.bits(uint32(hdr), 3)
		switch hdr >> 1 {
		case 0:
			err = h.stored()
		case 1:
			err = h.codes(fixedLit[:288], fixedDist[:30])
		case 2:
			err = h.dynamic()
		default:
			err = badPuff("block type 3")
		}
		if err != nil {
			return err
		}
		if hdr&1 != 0 {
			return h.pad()
		}
	}
}

func (h *huffer) stored() error {
	if err := h.pad(); err != nil {
		return err
	}
	var l [2]byte
	if _, err := io.ReadFull(h.r, l[:]); err != nil {
		return err
	}
	if _, err := h.w.Write([]byte{l[0], l[1], ^l[0], ^l[1]}); err != nil {
		return err
	}
	_, err := io.CopyN(h.w, h.r, int64(binary.LittleEndian.Uint16(l[:])))
	return err
}

func (h *huffer) dynamic() error {
	var hdr [3]byte
	if _, err := io.ReadFull(h.r, hdr[:]); err != nil {
		return err
	}
	if hdr[0] > 31 || hdr[1] > 31 || hdr[2] > 15 {
		return badPuff("dynamic header %v", hdr)
	}
	nlen, ndist, ncode := int(hdr[0])+257, int(hdr[1])+1, int(hdr[2])+4
	if nlen > maxLits || ndist > maxDists {
		return badPuff("dynamic header counts %d/%d", nlen, ndist)
	}
	h.bits(uint32(hdr[0]), 5)
	h.bits(uint32(hdr[1]), 5)
	h.bits(uint32(hdr[2]), 4)
	var cl [19]uint8
	for i := 0; i < ncode; i++ {
		v, err := h.r.ReadByte()
		if err != nil {
			return err
		}
		if v > 7 {
			return badPuff("code length code length %d", v)
		}
		cl[clOrder[i]] = v
		h.bits(uint32(v), 3)
	}
	var clCode encoder
	if !clCode.build(cl[:]) {
		return badPuff("over-subscribed code length code")
	}
	var lengths [maxLits + maxDists]uint8
	for i := 0; i < nlen+ndist; {
		sym, err := h.r.ReadByte()
		if err != nil {
			return err
		}
		if sym > 18 || clCode.len[sym] == 0 {
			return badPuff("code length symbol %d", sym)
		}
		h.bits(uint32(clCode.code[sym]), uint(clCode.len[sym]))
		if sym < 16 {
			lengths[i] = sym
			i++
			continue
		}
		var l uint8
		if sym == 16 {
			if i == 0 {
				return badPuff("repeat with no previous length")
			}
			l = lengths[i-1]
		}
		n, min := repeatBits(int(sym))
		e, err := h.r.ReadByte()
		if err != nil {
			return err
		}
		if uint32(e)>>n != 0 || i+int(e)+min > nlen+ndist {
			return badPuff("code length repeat %d", e)
		}
		h.bits(uint32(e), n)
		for rep := int(e) + min; rep > 0; rep-- {
			lengths[i] = l
			i++
		}
	}
	return h.codes(lengths[:nlen], lengths[nlen:nlen+ndist])
}

func (h *huffer) codes(litLens, distLens []uint8) error {
	var lit, dist encoder
	if !lit.build(litLens) || !dist.build(distLens) {
		return badPuff("over-subscribed code")
	}
	sym := func(e *encoder, s int) error {
		if e.len[s] == 0 {
			return badPuff("symbol %d has no code", s)
		}
		h.bits(uint32(e.code[s]), uint(e.len[s]))
		return nil
	}
	for {
		t, err := h.r.ReadByte()
		if err != nil {
			return err
		}
		switch {
		case t < maxRun:
			for n := int(t) + 1; n > 0; n-- {
				c, err := h.r.ReadByte()
				if err != nil {
					return err
				}
				if err := sym(&lit, int(c)); err != nil {
					return err
				}
			}
		case t == tokEnd:
			return sym(&lit, 256)
		case t == tokMatch:
			var m [3]byte
			if _, err := io.ReadFull(h.r, m[:]); err != nil {
				return err
			}
			length, d := int(m[0])+3, int(m[1])<<8|int(m[2])+1
			if d > 32768 {
				return badPuff("distance %d", d)
			}
			lc := lenCode(length)
			if err := sym(&lit, lc+257); err != nil {
				return err
			}
			h.bits(uint32(length-int(lenBase[lc])), uint(lenExtra[lc]))
			dc := distCode(d)
			if err := sym(&dist, dc); err != nil {
				return err
			}
			h.bits(uint32(d-int(dstBase[dc])), uint(dstExtra[dc]))
		default:
			return badPuff("token %#x", t)
		}
		if h.err != nil {
			return h.err
		}
	}
}

// lenCodes maps length-3 to its length code (0-28); 258 is always code
// 285 (puff refuses streams that send it as 284). distCodes maps
// distance-1 to its code for distances up to 256, and (distance-1)>>7 for
// longer ones (codes there span multiples of 128).
var lenCodes [256]uint8
var distCodes, distCodesHi [256]uint8

func init() {
	for c := 0; c < 29; c++ {
		for l := int(lenBase[c]); l < int(lenBase[c])+1<<lenExtra[c] && l <= 258; l++ {
			lenCodes[l-3] = uint8(c)
		}
	}
	for c := 0; c < 30; c++ {
		for d := int(dstBase[c]); d < int(dstBase[c])+1<<dstExtra[c]; d++ {
			if d <= 256 {
				distCodes[d-1] = uint8(c)
			} else {
				distCodesHi[(d-1)>>7] = uint8(c)
			}
		}
	}
}

func lenCode(l int) int { return int(lenCodes[l-3]) }

func distCode(d int) int {
	if d <= 256 {
		return int(distCodes[d-1])
	}
	return int(distCodesHi[(d-1)>>7])
}
