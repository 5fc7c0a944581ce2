package deflate

import "fmt"

// The puff form of one deflate stream, byte by byte (the file form around
// it is in container.go):
//
//	block:   hdr (bit 0 BFINAL, bits 1-2 BTYPE), then by type
//	  stored:  pad (the bits skipped to the byte boundary), LEN (2 bytes LE), LEN bytes
//	  fixed:   tokens
//	  dynamic: HLIT, HDIST, HCLEN (one byte each, as sent), HCLEN+4 code length
//	           code lengths (one byte each, in clOrder), the code length symbols
//	           (one byte each; 16, 17 and 18 followed by their extra bits' value),
//	           tokens
//	tokens:  0x00-0x7f: a run of (t+1) literal bytes, which follow
//	         tokMatch, length-3, distance-1 (2 bytes BE)
//	         tokEnd: end of block
//	after the final block: the value of the bits that pad its last byte
//
// Every choice a compressor makes is in it, so encoding it (huff.go) is a
// function of the puff alone.
const (
	tokMatch = 0x80
	tokEnd   = 0x81
	maxRun   = 0x80
)

// bitReader reads deflate's LSB-first bits. The bits it holds are the
// rest of a partly read byte (the low nbits%8) and whole bytes read ahead.
type bitReader struct {
	b     []byte
	pos   int
	buf   uint32
	nbits uint
}

var errShort = fmt.Errorf("stream cut short: %w", ErrNotDeflate)

func (r *bitReader) bits(n uint) (uint32, error) {
	for r.nbits < n {
		if r.pos >= len(r.b) {
			return 0, errShort
		}
		r.buf |= uint32(r.b[r.pos]) << r.nbits
		r.pos++
		r.nbits += 8
	}
	v := r.buf & (1<<n - 1)
	r.buf >>= n
	r.nbits -= n
	return v, nil
}

// pad consumes the bits up to the byte boundary and returns their value;
// whole bytes read ahead go back to the input.
func (r *bitReader) pad() byte {
	v := byte(r.buf & (1<<(r.nbits%8) - 1))
	r.pos -= int(r.nbits / 8)
	r.buf, r.nbits = 0, 0
	return v
}

// decode reads one symbol of h: by table for short codes, else bit by bit
// (puff.c's decode).
func (r *bitReader) decode(h *huffman) (int, error) {
	for r.nbits < fastBits && r.pos < len(r.b) {
		r.buf |= uint32(r.b[r.pos]) << r.nbits
		r.pos++
		r.nbits += 8
	}
	if e := h.fast[r.buf&(1<<fastBits-1)]; e != 0 && uint(e&15) <= r.nbits {
		r.buf >>= e & 15
		r.nbits -= uint(e & 15)
		return int(e >> 4), nil
	}
	code, first, index := 0, 0, 0
	for l := 1; l <= maxBits; l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= int(b)
		count := int(h.count[l])
		if code-count < first {
			return int(h.symbol[index+code-first]), nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, fmt.Errorf("code not in the table: %w", ErrNotDeflate)
}

// puffer appends the puff of a deflate stream to out, refusing to pass max.
type puffer struct {
	r    bitReader
	out  []byte
	max  int
	size int64 // bytes the stream has expanded to so far
	run  int   // index in out of the open literal run's tag, or -1
}

func (p *puffer) put(b ...byte) error {
	if len(p.out)+len(b) > p.max {
		return ErrTooLarge
	}
	p.out = append(p.out, b...)
	return nil
}

func bad(format string, a ...any) error {
	return fmt.Errorf(format+": %w", append(a, ErrNotDeflate)...)
}

// stream puffs one deflate stream starting at p.r.pos.
func (p *puffer) stream() error {
	for {
		h, err := p.r.bits(3)
		if err != nil {
			return err
		}
		if err := p.put(byte(h)); err != nil {
			return err
		}
		switch h >> 1 {
		case 0:
			err = p.stored()
		case 1:
			err = p.codes(fixedLit[:288], fixedDist[:30], false)
		case 2:
			err = p.dynamic()
		default:
			err = bad("block type 3")
		}
		if err != nil {
			return err
		}
		if h&1 != 0 {
			return p.put(p.r.pad())
		}
	}
}

func (p *puffer) stored() error {
	if err := p.put(p.r.pad()); err != nil {
		return err
	}
	b := p.r.b[p.r.pos:]
	if len(b) < 4 {
		return errShort
	}
	n := int(b[0]) | int(b[1])<<8
	if b[2] != ^b[0] || b[3] != ^b[1] {
		return bad("stored block length check")
	}
	if len(b) < 4+n {
		return errShort
	}
	p.r.pos += 4 + n
	p.size += int64(n)
	if err := p.put(b[0], b[1]); err != nil {
		return err
	}
	return p.put(b[4 : 4+n]...)
}

func (p *puffer) dynamic() error {
	var hdr [3]uint32
	for i, n := range []uint{5, 5, 4} {
		v, err := p.r.bits(n)
		if err != nil {
			return err
		}
		hdr[i] = v
	}
	nlen, ndist, ncode := int(hdr[0])+257, int(hdr[1])+1, int(hdr[2])+4
	if nlen > maxLits || ndist > maxDists {
		return bad("dynamic header counts %d/%d", nlen, ndist)
	}
	if err := p.put(byte(hdr[0]), byte(hdr[1]), byte(hdr[2])); err != nil {
		return err
	}
	var cl [19]uint8
	for i := 0; i < ncode; i++ {
		v, err := p.r.bits(3)
		if err != nil {
			return err
		}
		cl[clOrder[i]] = uint8(v)
		if err := p.put(byte(v)); err != nil {
			return err
		}
	}
	var clCode huffman
	if clCode.build(cl[:]) != 0 {
		return bad("incomplete code length code")
	}
	var lengths [maxLits + maxDists]uint8
	for i := 0; i < nlen+ndist; {
		sym, err := p.r.decode(&clCode)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			if err := p.put(byte(sym)); err != nil {
				return err
			}
			continue
		}
		var l uint8
		if sym == 16 {
			if i == 0 {
				return bad("repeat with no previous length")
			}
			l = lengths[i-1]
		}
		n, min := repeatBits(sym)
		e, err := p.r.bits(n)
		if err != nil {
			return err
		}
		rep := int(e) + min
		if i+rep > nlen+ndist {
			return bad("code lengths overrun")
		}
		if err := p.put(byte(sym), byte(e)); err != nil {
			return err
		}
		for ; rep > 0; rep-- {
			lengths[i] = l
			i++
		}
	}
	if lengths[256] == 0 {
		return bad("no end-of-block code")
	}
	return p.codes(lengths[:nlen], lengths[nlen:nlen+ndist], true)
}

// repeatBits gives the extra bits and the least count of code length
// symbols 16, 17 and 18.
func repeatBits(sym int) (uint, int) {
	switch sym {
	case 16:
		return 2, 3
	case 17:
		return 3, 3
	}
	return 7, 11
}

// codes puffs the tokens of a block coded with these code lengths; a
// dynamic block's codes must be complete (the fixed distance code is not:
// codes 30 and 31 are unused).
func (p *puffer) codes(litLens, distLens []uint8, dynamic bool) error {
	var lit, dist huffman
	if left := lit.build(litLens); dynamic && !lit.usable(left, len(litLens)) {
		return bad("bad literal/length code")
	}
	if left := dist.build(distLens); dynamic && !dist.usable(left, len(distLens)) {
		return bad("bad distance code")
	}
	p.run = -1
	for {
		sym, err := p.r.decode(&lit)
		if err != nil {
			return err
		}
		if sym < 256 {
			if p.run < 0 || p.out[p.run] == maxRun-1 {
				p.run = len(p.out)
				if err := p.put(0); err != nil {
					return err
				}
			} else {
				p.out[p.run]++
			}
			p.size++
			if err := p.put(byte(sym)); err != nil {
				return err
			}
			continue
		}
		p.run = -1
		if sym == 256 {
			return p.put(tokEnd)
		}
		if err := p.match(sym-257, &dist); err != nil {
			return err
		}
	}
}

func (p *puffer) match(sym int, dist *huffman) error {
	if sym >= 29 {
		return bad("length code %d", sym+257)
	}
	e, err := p.r.bits(uint(lenExtra[sym]))
	if err != nil {
		return err
	}
	length := int(lenBase[sym]) + int(e)
	if sym == 27 && length == 258 {
		return fmt.Errorf("length 258 as code 284: %w", ErrUnsupported)
	}
	ds, err := p.r.decode(dist)
	if err != nil {
		return err
	}
	if ds >= 30 {
		return bad("distance code %d", ds)
	}
	e, err = p.r.bits(uint(dstExtra[ds]))
	if err != nil {
		return err
	}
	d := int(dstBase[ds]) + int(e)
	if int64(d) > p.size {
		return bad("distance %d before the start", d)
	}
	p.size += int64(length)
	return p.put(tokMatch, byte(length-3), byte((d-1)>>8), byte(d-1))
}
