package delta

import (
	"bytes"
	"sync"
	"testing"
)

// TestFrameBufs: frame buffer sets are mapped outside the heap, kept per
// class between deltas, dropped when a buffer had to grow onto the heap,
// and unmapped by Release; deltas decoded at once get sets of their own.
func TestFrameBufs(t *testing.T) {
	Release()
	t.Cleanup(Release)
	apply := func(old, new []byte) {
		t.Helper()
		var d, out bytes.Buffer
		if err := Create(old, bytes.NewReader(new), &d); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(old, &d, &out, int64(len(new))); err != nil || !bytes.Equal(out.Bytes(), new) {
			t.Fatalf("apply: %v (%d bytes, want %d)", err, out.Len(), len(new))
		}
	}
	bigOld := sample(1<<20, 2) // over smallOut: a large set
	apply(bigOld, mutate(bigOld))
	if len(bigBufs) != 1 || len(smallBufs) != 0 {
		t.Fatalf("after one large delta: %d large and %d small sets kept, want 1 and 0", len(bigBufs), len(smallBufs))
	}
	fb := <-bigBufs
	if fb.mem == nil || !sameStart(fb.in, fb.mem) || cap(fb.out) != PieceSize+slack {
		t.Fatalf("large set not mapped as expected: mem %d bytes, out cap %d", len(fb.mem), cap(fb.out))
	}
	bigBufs <- fb
	apply(bigOld, mutate(bigOld))
	if got := <-bigBufs; got != fb {
		t.Fatal("the kept large set was not reused")
	} else {
		bigBufs <- got
	}

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			old := sample(100_000, int64(10+i))
			apply(old, mutate(old))
		})
	}
	wg.Wait()
	if n := len(smallBufs); n < 1 || n > cap(smallBufs) {
		t.Fatalf("%d small sets kept", n)
	}

	// A set whose output grew onto the heap is freed, not kept.
	grown := getFrameBuf(nil, false)
	kept := len(smallBufs)
	grown.out = make([]byte, 0, 4*len(grown.mem)) // larger than the whole mapping
	putFrameBuf(grown)
	if len(smallBufs) != kept || grown.mem != nil {
		t.Fatalf("a grown set was kept (%d sets, was %d) or not unmapped", len(smallBufs), kept)
	}

	Release()
	if len(bigBufs) != 0 || len(smallBufs) != 0 || fb.mem != nil {
		t.Fatal("Release left sets mapped")
	}
}
