package delta

import (
	"bufio"
	"fmt"
	"io"

	"github.com/xi2/xz"

	"laptop.org/upgrade/errdefs"
)

// NewXZReader decodes an xz stream (a pack of codec repo.CodecXZ) whose
// dictionary is at most dictMax bytes: a larger one is refused before any
// memory is taken for it, so a decoder holds at most dictMax. Reading past
// maxOut bytes is ErrTooLarge; a damaged stream is ErrCorrupt.
//
// github.com/xi2/xz is a port of XZ Embedded (the kernel's decoder): LZMA2
// and the branch filters, decode only, which is all a client needs.
func NewXZReader(r io.Reader, dictMax uint32, maxOut int64) (io.ReadCloser, error) {
	dec, err := xz.NewReader(bufio.NewReaderSize(r, 64<<10), dictMax)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrCorrupt)
	}
	// NewReader has already decoded the first block's header, where the
	// dictionary size is: a size over dictMax fails there (tested), before
	// the dictionary is allocated, and is reported as corrupt like any
	// stream this client cannot take. A pack is one stream: decoding stops
	// at its end (the pack's signed digest covers the whole file).
	dec.Multistream(false)
	return &cappedReader{dec: dec, left: maxOut}, nil
}
