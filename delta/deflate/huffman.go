// Package deflate turns deflate streams (RFC 1951), alone or inside gzip
// (RFC 1952) and zlib (RFC 1950) files, into a "puff": a byte form that
// records everything the compressed bits encode (block types and final
// bits, each dynamic block's code-length header symbol by symbol, the
// literal/length/distance tokens, stored blocks, padding bits) and back,
// bit-exactly, whatever compressor made the stream. It is the design of
// ChromeOS's puffin: two versions of a .gz differ little once puffed, where
// their compressed bytes differ from the first change on, so a delta
// between puffs is a fraction of a delta between the files.
//
// Puffing needs no window (the tokens are kept, not the text they expand
// to), so a puff is about the size of the tokens; Puff bounds it. A stream
// the puff form cannot describe (a length of 258 sent as code 284) is
// ErrUnsupported; callers then fall back to a plain delta.
package deflate

import (
	"fmt"

	"laptop.org/upgrade/errdefs"
)

var (
	// ErrNotDeflate: the input is not a gzip or zlib file this package
	// reads (or a stream in it is invalid deflate).
	ErrNotDeflate = fmt.Errorf("not a valid gzip or zlib file: %w", errdefs.ErrInvalidArgument)
	// ErrUnsupported: valid deflate that the puff form cannot reproduce.
	ErrUnsupported = fmt.Errorf("deflate stream not reproducible: %w", errdefs.ErrInvalidArgument)
	// ErrTooLarge: the puff, or the file it encodes, would be larger than
	// the caller allows.
	ErrTooLarge = fmt.Errorf("puff over the size limit: %w", errdefs.ErrTooLarge)
	// ErrBadPuff: a puff that does not describe a deflate stream.
	ErrBadPuff = fmt.Errorf("invalid puff: %w", errdefs.ErrCorrupt)
)

const (
	maxBits  = 15
	maxLits  = 286 // literal/length symbols a stream may use
	maxDists = 30
)

// clOrder is the order of the code length code lengths in a dynamic header.
var clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// Length and distance codes: base values and extra bits (RFC 1951 3.2.5).
var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dstBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dstExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// huffman is a canonical code for decoding, as in zlib's puff.c: the
// number of codes of each length and the symbols in code order.
type huffman struct {
	count  [maxBits + 1]uint16
	symbol [maxLits + 2]uint16
	// fast maps the next fastBits bits of input to symbol<<4 | length for
	// codes of at most fastBits bits (0: longer, decode bit by bit).
	fast [1 << fastBits]uint16
}

const fastBits = 9

// build fills h from code lengths and returns how many codes are left
// unused: 0 for a complete code, > 0 incomplete, < 0 over-subscribed.
func (h *huffman) build(lengths []uint8) int {
	h.count = [maxBits + 1]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	if int(h.count[0]) == len(lengths) {
		return 0 // no codes: complete, and decoding fails if one is read
	}
	left := 1
	for l := 1; l <= maxBits; l++ {
		left <<= 1
		left -= int(h.count[l])
		if left < 0 {
			return left
		}
	}
	var offs [maxBits + 1]uint16
	for l := 1; l < maxBits; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	h.fast = [1 << fastBits]uint16{}
	code, i := 0, 0
	for l := 1; l <= fastBits; l++ {
		for n := 0; n < int(h.count[l]); n++ {
			r := reverse(code, l)
			for j := r; j < 1<<fastBits; j += 1 << l {
				h.fast[j] = h.symbol[i]<<4 | uint16(l)
			}
			code++
			i++
		}
		code <<= 1
	}
	return left
}

// reverse returns the low n bits of c in reverse order.
func reverse(c, n int) int {
	r := 0
	for i := 0; i < n; i++ {
		r = r<<1 | (c>>i)&1
	}
	return r
}

// usable reports whether a code built with build's result left may be
// used: complete, or a single code of one bit (RFC 1951 allows one
// distance code; zlib allows one code of either kind).
func (h *huffman) usable(left int, n int) bool {
	return left == 0 || (left > 0 && int(h.count[0])+int(h.count[1]) == n && h.count[1] == 1)
}

// encoder is the same canonical code for writing: each symbol's code,
// bit-reversed because deflate sends codes from their top bit.
type encoder struct {
	code [maxLits + 2]uint16
	len  [maxLits + 2]uint8
}

// build fills e from code lengths; an over-subscribed set is refused.
func (e *encoder) build(lengths []uint8) bool {
	var count [maxBits + 1]int
	for _, l := range lengths {
		count[l]++
	}
	left := 1
	for l := 1; l <= maxBits; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false
		}
	}
	var next [maxBits + 2]int
	code := 0
	count[0] = 0
	for l := 1; l <= maxBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	e.len = [maxLits + 2]uint8{}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		e.code[sym], e.len[sym] = uint16(reverse(next[l], int(l))), l
		next[l]++
	}
	return true
}

var fixedLit, fixedDist [maxLits + 2]uint8

func init() {
	for i := range fixedLit {
		switch {
		case i < 144:
			fixedLit[i] = 8
		case i < 256:
			fixedLit[i] = 9
		case i < 280:
			fixedLit[i] = 7
		default:
			fixedLit[i] = 8
		}
	}
	for i := 0; i < 30; i++ {
		fixedDist[i] = 5
	}
}
