package elf

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/errdefs"
)

// libV1 and libV2 are two versions of a package linked into a program:
// the second one's function grew, so the code after it moved.
const (
	libV1 = `package lib

import "strings"

func Count(a []string) int {
	n := 0
	for _, s := range a {
		n += strings.Count(s, "/") + 1
	}
	return n
}
`
	libV2 = `package lib

import "strings"

func Count(a []string) int {
	n := 0
	for i, s := range a {
		if strings.HasPrefix(s, "-") {
			n += i * 3
			continue
		}
		n += strings.Count(s, "/") + len(strings.Fields(s)) + 1
	}
	return n
}
`
	progMain = `package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	"pair/lib"
)

func main() {
	u, _ := url.Parse(os.Args[0])
	b, _ := json.Marshal(map[string]any{"u": u.String(), "n": lib.Count(os.Args)})
	fmt.Println(string(b))
}
`
)

// goBuild builds the program with lib (stripped, as distributions ship
// executables) and returns the executable's bytes.
func goBuild(t *testing.T, lib string) []byte {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build a pair of executables")
	}
	dir := t.TempDir()
	files := map[string]string{"go.mod": "module pair\n\ngo 1.22\n", "main.go": progMain, "lib/lib.go": lib}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goCmd, "build", "-trimpath", "-ldflags=-s", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mapDelta makes a map delta from old to nw.
func mapDelta(t *testing.T, old, nw []byte) []byte {
	t.Helper()
	h, base, err := PrepareMap(old, nw)
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.NewBuffer(h)
	if err := delta.Create(base, bytes.NewReader(nw), b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func applyMap(old, d []byte, maxOut int64) ([]byte, error) {
	var out bytes.Buffer
	err := ApplyMapDelta(old, bytes.NewReader(d), &out, maxOut)
	return out.Bytes(), err
}

// Two builds of a program whose library function grew: the map delta
// gives the new executable back exactly, in both directions, and is
// smaller than a plain delta, as the projection lines up the references
// of moved code.
func TestMapDeltaGoBuilds(t *testing.T) {
	v1, v2 := goBuild(t, libV1), goBuild(t, libV2)
	if bytes.Equal(v1, v2) {
		t.Fatal("the two builds are the same")
	}
	dash := executables(t)["/bin/dash"]
	tests := []struct {
		name     string
		old, new []byte
		smaller  bool // than a plain delta
	}{
		{"grown", v1, v2, true},
		{"shrunk", v2, v1, true},
		{"same", v1, v1, false},
		{"unrelated", dash, v2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mapDelta(t, tt.old, tt.new)
			got, err := applyMap(tt.old, d, int64(len(tt.new)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.new) {
				t.Fatalf("applied map delta gives %d bytes that differ from the new file", len(got))
			}
			var plain bytes.Buffer
			if err := delta.Create(tt.old, bytes.NewReader(tt.new), &plain); err != nil {
				t.Fatal(err)
			}
			t.Logf("map delta %d bytes, plain %d", len(d), plain.Len())
			if tt.smaller && len(d) >= plain.Len() {
				t.Errorf("map delta %d bytes, plain %d", len(d), plain.Len())
			}
		})
	}
}

// A file aligned with itself moves nowhere, and projecting through no
// shift is the identity.
func TestAlignSelf(t *testing.T) {
	for p, b := range executables(t) {
		sh, err := Align(b, b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, s := range sh {
			if s.By != 0 {
				t.Fatalf("%s: shift %+v of a file against itself", p, s)
			}
		}
		for _, sh := range [][]Shift{nil, sh} {
			got, err := Project(b, sh)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("%s: projection through %v changed the file", p, sh)
			}
		}
	}
}

func TestShiftsEncoding(t *testing.T) {
	tests := []struct {
		name string
		sh   []Shift
	}{
		{"none", []Shift{}},
		{"one", []Shift{{Addr: 0x401000, By: 16}}},
		{"several", []Shift{{Addr: 0, By: 0}, {Addr: 0x401000, By: -32}, {Addr: 0x402000, By: 4096}, {Addr: 1 << 62, By: -1 << 40}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readShifts(bytes.NewReader(appendShifts(nil, tt.sh)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.sh, got); diff != "" {
				t.Fatalf("shifts (-want +got):\n%s", diff)
			}
		})
	}
}

// Corrupt deltas and bases are errors, never panics.
func TestApplyMapDeltaCorrupt(t *testing.T) {
	old := executables(t)["/bin/dash"]
	nw := append(append([]byte(nil), old[:len(old)/2]...), old...)
	good := mapDelta(t, old, nw)
	hdr := appendShifts(nil, []Shift{{Addr: 0x1000, By: 8}})
	tests := []struct {
		name string
		old  []byte
		d    []byte
		want error // nil: any error
	}{
		{"empty", old, nil, nil},
		{"cut map", old, hdr[:len(hdr)-1], nil},
		{"huge count", old, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, errdefs.ErrTooLarge},
		{"repeated address", old, []byte{2, 0x80, 0x20, 0, 0, 2}, errdefs.ErrInvalidArgument},
		{"address wraps", old, []byte{2, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}, errdefs.ErrInvalidArgument},
		{"garbage delta", old, append(hdr, "not a delta"...), errdefs.ErrCorrupt},
		{"cut delta", old, good[:len(good)-7], nil},
		{"script base", []byte("#!/bin/sh\n"), good, ErrNotELF},
		{"cut base", old[:100], good, ErrNotELF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := applyMap(tt.old, tt.d, int64(len(nw)))
			if err == nil {
				t.Fatalf("no error; %d bytes out", len(got))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := applyMap(old, good, int64(len(nw))-1); err == nil {
		t.Fatal("a delta past maxOut applied")
	}
	// A map with no delta after it is an empty file, which the caller's
	// digest check refuses (as for package delta's empty deltas).
	if got, err := applyMap(old, hdr, int64(len(nw))); err == nil && len(got) != 0 {
		t.Fatalf("map alone gave %d bytes", len(got))
	}
}

// FuzzApplyMapDelta: any map and delta over a real executable is applied
// or refused, never a panic.
func FuzzApplyMapDelta(f *testing.F) {
	old, err := os.ReadFile("/bin/dash")
	if err != nil {
		f.Skip(err)
	}
	f.Add(appendShifts(nil, []Shift{{Addr: 0x1000, By: 8}, {Addr: 0x9000, By: -4096}}))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, d []byte) {
		applyMap(old, d, int64(2*len(old)))
	})
}

// FuzzProject: aligning and projecting damaged executables is refused or
// done, never a panic.
func FuzzProject(f *testing.F) {
	old, err := os.ReadFile("/bin/dash")
	if err != nil {
		f.Skip(err)
	}
	f.Add(uint16(40), byte(0xff), int64(8))
	f.Add(uint16(120), byte(0x10), int64(-4096))
	f.Fuzz(func(t *testing.T, at uint16, v byte, by int64) {
		b := append([]byte(nil), old...)
		b[int(at)%len(b)] = v
		if _, err := Project(b, []Shift{{Addr: 0x1000, By: by}}); err != nil {
			return
		}
		Align(old, b)
	})
}

// BenchmarkProject is the client's cost of a map delta beyond the plain
// delta (compare BenchmarkEncode: an elfx86 delta costs two sweeps).
func BenchmarkProject(b *testing.B) {
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		b.Fatal(err)
	}
	sh := []Shift{{Addr: 0x401000, By: 0}, {Addr: 0x480000, By: 64}, {Addr: 0x600000, By: -128}}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Project(data, sh); err != nil {
			b.Fatal(err)
		}
	}
}
