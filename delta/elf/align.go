package elf

import (
	"bytes"
	"sort"
)

// alignWindow is the length of the byte strings matched between old and
// new; alignSample keeps one position in alignSample+1 (by hash, so the
// same ones on both sides) to bound the publisher's memory.
const (
	alignWindow = 32
	alignSample = 7
	// minBlock: shorter matches are not trusted to say where code moved.
	minBlock = 48
)

// block is a run of bytes that old (at file offset o) and new (at n)
// share once references are masked.
type block struct{ o, n, len int }

// Align finds where the addresses of old moved to in new: it masks both
// files' references, matches unique byte strings between them, extends
// the matches, and returns the shift of each run of old addresses that
// moved by one amount.
func Align(old, new []byte) ([]Shift, error) {
	mo, lo, err := masked(old)
	if err != nil {
		return nil, err
	}
	mn, ln, err := masked(new)
	if err != nil {
		return nil, err
	}
	idx := map[uint64]int{}
	rolling(mo, func(i int, h uint64) {
		if _, dup := idx[h]; dup {
			idx[h] = -1
		} else {
			idx[h] = i
		}
	})
	var blocks []block
	var cur block
	rolling(mn, func(i int, h uint64) {
		o, ok := idx[h]
		if !ok || o < 0 || (i < cur.n+cur.len && i-o == cur.n-cur.o) {
			return
		}
		if !bytes.Equal(mo[o:o+alignWindow], mn[i:i+alignWindow]) {
			return
		}
		b := block{o: o, n: i}
		floor := cur.n + cur.len
		for b.o > 0 && b.n > floor && mo[b.o-1] == mn[b.n-1] {
			b.o, b.n = b.o-1, b.n-1
		}
		for b.o+b.len < len(mo) && b.n+b.len < len(mn) && mo[b.o+b.len] == mn[b.n+b.len] {
			b.len++
		}
		cur = b
		if b.len >= minBlock {
			blocks = append(blocks, b)
		}
	})
	return shifts(blocks, lo, ln), nil
}

// rolling calls f for every sampled position of b with the hash of the
// alignWindow bytes there.
func rolling(b []byte, f func(i int, h uint64)) {
	if len(b) < alignWindow {
		return
	}
	const mul = 0x100000001b3
	var pow uint64 = 1
	for i := 0; i < alignWindow; i++ {
		pow *= mul
	}
	var h uint64
	for i := 0; i < len(b); i++ {
		h = h*mul + uint64(b[i]) + 1
		if i >= alignWindow {
			h -= (uint64(b[i-alignWindow]) + 1) * pow
		}
		if i >= alignWindow-1 {
			if m := h * 0x9e3779b97f4a7c15; m>>61&alignSample == 0 {
				f(i-alignWindow+1, m)
			}
		}
	}
}

// shifts turns matched blocks into address shifts of old: blocks are
// placed at their old addresses, and a new Shift starts wherever the
// amount changes.
func shifts(blocks []block, lo, ln []load) []Shift {
	type run struct {
		addr, end uint64
		by        int64
	}
	var runs []run
	for _, b := range blocks {
		ao, ok1 := addrOf(lo, uint64(b.o))
		an, ok2 := addrOf(ln, uint64(b.n))
		if ok1 && ok2 {
			runs = append(runs, run{ao, ao + uint64(b.len), int64(an - ao)})
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].addr < runs[j].addr })
	var out []Shift
	for _, r := range runs {
		if len(out) > 0 && out[len(out)-1].By == r.by {
			continue
		}
		if len(out) > 0 && out[len(out)-1].Addr == r.addr {
			out[len(out)-1].By = r.by
			continue
		}
		out = append(out, Shift{Addr: r.addr, By: r.by})
	}
	return out
}
