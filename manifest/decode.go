package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/strictjson"
)

// Decode reads and fully validates a manifest under pol. Anything malformed
// or unsafe is an error naming the line (the first bad line, as if read
// from the top); nothing partial is returned.
//
// The entry lines are independent, so they are decoded in parallel, in
// chunks of whole lines: an upgrade decodes two manifests (the running
// version's and the target's) before anything else can start
// (bench/manual.md, "Figures behind design choices").
func Decode(b []byte, pol Policy) (*Manifest, error) {
	limit := pol.MaxEntries
	if limit <= 0 {
		limit = DefaultMaxEntries
	}
	head, body, _ := bytes.Cut(b, []byte{'\n'})
	if len(head) > 0 && head[len(head)-1] == '\r' { // as bufio.ScanLines reads it
		head = head[:len(head)-1]
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("manifest: empty: %w", errdefs.ErrInvalidArgument)
	}
	if len(head) > maxLine {
		return nil, fmt.Errorf("manifest header: %v: %w", bufio.ErrTooLong, errdefs.ErrInvalidArgument)
	}
	m := &Manifest{}
	if err := strictjson.Unmarshal(head, &m.Header); err != nil {
		return nil, fmt.Errorf("manifest header: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if m.Type != "manifest" || m.Spec != Spec {
		return nil, fmt.Errorf("manifest header: type %q spec %d, want manifest %d: %w", m.Type, m.Spec, Spec, errdefs.ErrInvalidArgument)
	}
	if m.Header.Entries < 0 || m.Header.Entries > limit {
		return nil, fmt.Errorf("manifest: %d entries, limit %d: %w", m.Header.Entries, limit, errdefs.ErrTooLarge)
	}
	// Lines present, not the header's claim, size the slice: a few bytes
	// saying "200,000 entries" reserve nothing. Only the first Entries
	// lines are decoded; a line beyond them is an error once they are good.
	lines := bytes.Count(body, []byte{'\n'})
	if len(body) > 0 && body[len(body)-1] != '\n' {
		lines++
	}
	n := min(lines, m.Header.Entries)
	m.Entries = make([]Entry, n)
	if err := decodeEntries(body, m.Entries); err != nil {
		return nil, err
	}
	if lines > n {
		return nil, fmt.Errorf("manifest line %d: more entries than the header's %d: %w", n+2, m.Header.Entries, errdefs.ErrInvalidArgument)
	}
	if n != m.Header.Entries {
		return nil, fmt.Errorf("manifest: %d entries, header says %d: %w", n, m.Header.Entries, errdefs.ErrInvalidArgument)
	}
	if err := m.Validate(pol); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeChunk is the fewest entries worth a goroutine of their own.
const decodeChunk = 2048

// decodeEntries fills es from the first len(es) lines of body, one chunk of
// whole lines per core. The error is that of the lowest-numbered bad line.
func decodeEntries(body []byte, es []Entry) error {
	workers := max(1, min(runtime.GOMAXPROCS(0), len(es)/decodeChunk))
	chunks := splitLines(body, len(es), workers)
	errs := make([]error, len(chunks))
	var wg sync.WaitGroup
	for i, c := range chunks {
		wg.Go(func() {
			errs[i] = decodeLines(c.b, es[c.first:c.end], c.first)
		})
	}
	wg.Wait()
	for _, err := range errs { // in line order
		if err != nil {
			return err
		}
	}
	return nil
}

// lineChunk is lines [first, end) of a manifest's entries.
type lineChunk struct {
	b          []byte
	first, end int
}

// splitLines cuts the first n lines of body into parts chunks of about the
// same number of lines.
func splitLines(body []byte, n, parts int) []lineChunk {
	var cs []lineChunk
	at, off := 0, 0
	for p := 0; p < parts && at < n; p++ {
		end := at + (n-at)/(parts-p)
		start := off
		for k := at; k < end && off < len(body); k++ {
			i := bytes.IndexByte(body[off:], '\n')
			if i < 0 {
				off = len(body)
				break
			}
			off += i + 1
		}
		cs = append(cs, lineChunk{body[start:off], at, end})
		at = end
	}
	return cs
}

// decodeLines decodes the lines of b into es; first is the index of es[0]
// among all entries (the manifest's line first+2). One decoder reads the
// whole chunk, since a decoder per line is mostly garbage and a job's
// collector runs against a tight memory limit; each
// value must end where its line does, so that a line holds exactly one
// object, as the encoder writes it.
func decodeLines(b []byte, es []Entry, first int) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	off := 0 // where the current line starts in b
	for i := range es {
		line := first + i + 2
		end, next := len(b), len(b)
		if k := bytes.IndexByte(b[off:], '\n'); k >= 0 {
			end, next = off+k, off+k+1
		}
		if end > off && b[end-1] == '\r' { // as bufio.ScanLines reads it
			end--
		}
		if end-off > maxLine {
			return fmt.Errorf("manifest line %d: %v: %w", line, bufio.ErrTooLong, errdefs.ErrInvalidArgument)
		}
		if err := d.Decode(&es[i]); err != nil {
			return fmt.Errorf("manifest line %d: %v: %w", line, err, errdefs.ErrInvalidArgument)
		}
		if d.InputOffset() != int64(end) {
			return fmt.Errorf("manifest line %d: not one JSON object on its own line: %w", line, errdefs.ErrInvalidArgument)
		}
		off = next
	}
	return nil
}
