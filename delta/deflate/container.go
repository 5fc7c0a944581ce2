package deflate

import (
	"bytes"
	"encoding/binary"
)

// The puff of a file: magic, then segments until segEnd.
//
//	segRaw, length (uvarint), bytes: copied as they are (headers, trailers)
//	segDeflate, a deflate stream's puff (puff.go)
var magic = []byte("puf1")

const (
	segRaw     = 'r'
	segDeflate = 'd'
	segEnd     = 'e'
)

// Is reports whether b starts like a gzip or zlib file (Puff may still
// refuse it).
func Is(b []byte) bool { return isGzip(b) || isZlib(b) }

func isGzip(b []byte) bool { return len(b) >= 18 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8 }

func isZlib(b []byte) bool {
	return len(b) >= 6 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint(b[0])<<8|uint(b[1]))%31 == 0 && b[1]&0x20 == 0
}

// Puff returns the puff of a gzip file (one or more members, then any
// bytes) or a zlib stream, at most max bytes long.
func Puff(file []byte, max int) ([]byte, error) {
	p := &puffer{r: bitReader{b: file}, max: max}
	if err := p.put(magic...); err != nil {
		return nil, err
	}
	switch {
	case isGzip(file):
		for isGzip(file[p.r.pos:]) {
			h, err := gzipHeader(file[p.r.pos:])
			if err != nil {
				return nil, err
			}
			if err := p.raw(h); err != nil {
				return nil, err
			}
			if err := p.deflate(); err != nil {
				return nil, err
			}
			if err := p.raw(8); err != nil {
				return nil, err
			}
		}
	case isZlib(file):
		if err := p.raw(2); err != nil {
			return nil, err
		}
		if err := p.deflate(); err != nil {
			return nil, err
		}
	default:
		return nil, ErrNotDeflate
	}
	if err := p.raw(len(file) - p.r.pos); err != nil {
		return nil, err
	}
	if err := p.put(segEnd); err != nil {
		return nil, err
	}
	return p.out, nil
}

// raw copies the next n bytes of the file as a raw segment.
func (p *puffer) raw(n int) error {
	if n == 0 {
		return nil
	}
	if p.r.pos+n > len(p.r.b) {
		return errShort
	}
	if err := p.put(segRaw); err != nil {
		return err
	}
	if err := p.put(binary.AppendUvarint(nil, uint64(n))...); err != nil {
		return err
	}
	p.r.pos += n
	return p.put(p.r.b[p.r.pos-n : p.r.pos]...)
}

func (p *puffer) deflate() error {
	if err := p.put(segDeflate); err != nil {
		return err
	}
	p.size = 0
	return p.stream()
}

// gzipHeader returns the length of the gzip member header at b's start.
func gzipHeader(b []byte) (int, error) {
	flg := b[3]
	if flg&0xe0 != 0 {
		return 0, bad("gzip reserved flags")
	}
	n := 10
	if flg&0x04 != 0 { // FEXTRA
		if len(b) < n+2 {
			return 0, errShort
		}
		n += 2 + int(binary.LittleEndian.Uint16(b[n:]))
	}
	for _, f := range []byte{0x08, 0x10} { // FNAME, FCOMMENT
		if flg&f != 0 {
			if n > len(b) {
				return 0, errShort
			}
			z := bytes.IndexByte(b[n:], 0)
			if z < 0 {
				return 0, errShort
			}
			n += z + 1
		}
	}
	if flg&0x02 != 0 { // FHCRC
		n += 2
	}
	if n > len(b) {
		return 0, errShort
	}
	return n, nil
}
