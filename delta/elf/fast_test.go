package elf

import (
	"math/rand/v2"
	"os"
	"testing"
)

// checkFast fails if fastLen takes win and disagrees with x86asm; it
// returns whether fastLen took it.
func checkFast(t *testing.T, win []byte) bool {
	n, pcrel, ok := fastLen(win)
	if !ok {
		return false
	}
	if sn, sp := asmLen(win); n != sn || pcrel != sp {
		t.Fatalf("% x: fastLen says length %d, PC-relative operand at %d; x86asm says %d, %d", win, n, pcrel, sn, sp)
	}
	return true
}

// Every byte offset of real executables (the Go test binary itself among
// them: the code the Go pair's deltas are about), as the sweep may land
// anywhere, and windows cut short as at a segment's end.
func TestFastLen(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	files := executables(t)
	if !raceEnabled { // a race test binary is larger, and each check slower
		if files[self], err = os.ReadFile(self); err != nil {
			t.Fatal(err)
		}
	}
	for p, b := range files {
		taken := 0
		for i := range b {
			if checkFast(t, b[i:min(i+maxInst, len(b))]) {
				taken++
			}
			if i%7 == 0 {
				checkFast(t, b[i:min(i+1+i%maxInst, len(b))])
			}
		}
		t.Logf("%s: fastLen took %d of %d offsets", p, taken, len(b))
		if taken < len(b)/10 {
			t.Errorf("%s: fastLen took only %d of %d offsets", p, taken, len(b))
		}
	}
}

// Random bytes, biased towards the opcodes fastLen takes.
func TestFastLenRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	common := []byte{0x40, 0x41, 0x48, 0x49, 0x4c, 0x0f, 0x8d, 0x89, 0x8b, 0x83, 0x81, 0xe8, 0xe9, 0x69, 0x6b,
		0x05, 0x25, 0x04, 0x44, 0x84, 0xc0, 0xc6, 0xc7, 0x1f, 0x10, 0x70, 0xeb, 0xb8, 0xcc, 0x90}
	win := make([]byte, maxInst)
	n := 2_000_000
	if raceEnabled {
		n /= 10
	}
	for i := 0; i < n; i++ {
		for j := range win {
			if r.IntN(2) == 0 {
				win[j] = common[r.IntN(len(common))]
			} else {
				win[j] = byte(r.Uint32())
			}
		}
		checkFast(t, win[:1+r.IntN(maxInst)])
	}
}

func FuzzFastLen(f *testing.F) {
	f.Add([]byte{0x48, 0x8d, 0x05, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, win []byte) {
		checkFast(t, win[:min(len(win), maxInst)])
	})
}
