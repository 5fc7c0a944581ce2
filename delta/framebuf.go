package delta

import (
	"bufio"
	"io"

	"golang.org/x/sys/unix"
)

// Frame buffers: the compressed frame read whole (in) and its decoded
// output (out), reused from delta to delta.
//
// They live outside the Go heap, in anonymous mappings of a fixed size per
// class. An upgrade runs under a tight soft memory limit (engine/memory.go),
// so every byte of garbage brings the next collection closer, and grown and
// dropped frame buffers were a third of an upgrade's garbage. A mapping
// costs the collector nothing, and only the pages a frame touches are
// resident.
// Kept sets are unmapped by Release.
type frameBuf struct {
	in, out []byte
	br      *bufio.Reader
	mem     []byte // the mapping in and out are cut from; nil: heap
	inCap   int    // where out starts in mem
}

// Buffer classes: small for deltas of at most smallOut bytes of output
// (most files), big for the rest (a frame is at most PieceSize). The slack
// covers the frame's block headers and the decoder's overrun.
const (
	smallOut = 512 << 10
	slack    = 64 << 10
)

var (
	smallBufs = make(chan *frameBuf, 8) // workers and pack item workers at once
	bigBufs   = make(chan *frameBuf, 2) // one per core's worth of large deltas
)

func newFrameBuf(big bool) *frameBuf {
	in, out := smallOut+slack, smallOut+slack
	if big {
		in, out = maxFrame, PieceSize+slack
	}
	fb := &frameBuf{br: bufio.NewReaderSize(nil, 64<<10)}
	mem, err := unix.Mmap(-1, 0, in+out, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fb // the heap then: slower to collect, same result
	}
	fb.mem, fb.in, fb.out, fb.inCap = mem, mem[:0:in], mem[in:in:in+out], in
	return fb
}

// getFrameBuf returns a buffer set reading r; big asks for one that holds
// a whole PieceSize frame.
func getFrameBuf(r io.Reader, big bool) *frameBuf {
	pool := smallBufs
	if big {
		pool = bigBufs
	}
	var fb *frameBuf
	select {
	case fb = <-pool:
	default:
		fb = newFrameBuf(big)
	}
	fb.br.Reset(r)
	return fb
}

// putFrameBuf keeps fb for the next delta of its class, or frees it.
func putFrameBuf(fb *frameBuf) {
	fb.br.Reset(nil)
	pool := smallBufs
	if len(fb.mem) > 2*(smallOut+slack) {
		pool = bigBufs
	}
	if fb.mem == nil || !sameStart(fb.in, fb.mem) || !sameStart(fb.out, fb.mem[fb.inCap:]) {
		// A heap set, or one whose buffers had to grow onto the heap (a
		// frame without a content size, or one larger than its delta's
		// signed output, which the decoder allocates before it fails):
		// not kept.
		fb.free()
		return
	}
	if pool == bigBufs {
		// Large deltas are few: their pages are given back between
		// them (the mapping stays), so that only sets in use are resident.
		unix.Madvise(fb.mem, unix.MADV_DONTNEED)
	}
	select {
	case pool <- fb:
	default:
		fb.free()
	}
}

// sameStart reports whether a and b start at the same byte.
func sameStart(a, b []byte) bool {
	return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0]
}

func (fb *frameBuf) free() {
	if fb.mem != nil {
		unix.Munmap(fb.mem)
		fb.mem, fb.in, fb.out = nil, nil, nil
	}
}

// releaseFrameBufs unmaps the kept buffer sets.
func releaseFrameBufs() {
	for _, pool := range []chan *frameBuf{smallBufs, bigBufs} {
		for {
			select {
			case fb := <-pool:
				fb.free()
				continue
			default:
			}
			break
		}
	}
}
