// Command codecbench measures the delta codecs of issue 18 on a pair of
// trees: for every file that both trees hold at one path with different
// bytes and that a codec applies to (gzip/zlib files, x86-64 ELF files),
// the size of `zstd -19 --patch-from` of the files (what byte-level delta
// tools, ours before, pay) against what the publisher now stores: the
// smallest of a plain delta and the codecs' deltas (for ELF files, the
// encoded-file and the address-map delta). It prints BENCH lines;
// bench/data/codec-pair.sh builds the pair.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/delta/deflate"
	"laptop.org/upgrade/delta/elf"
)

// kind is one codec's tally.
type kind struct {
	name                         string
	files, kept                  int
	size, patchFrom, plain, ours int64
	floor                        int64 // gz: delta of the decompressed contents
	apply                        time.Duration
	by                           map[string]int // files per codec kept
}

func main() {
	oldDir := flag.String("old", "", "old tree")
	newDir := flag.String("new", "", "new tree")
	verbose := flag.Bool("v", false, "print every file")
	suffix := flag.String("suffix", "", "appended to every BENCH name (a second pair's figures)")
	flag.Parse()
	if *oldDir == "" || *newDir == "" {
		log.Fatal("usage: codecbench -old DIR -new DIR")
	}
	zstd, err := exec.LookPath("zstd")
	if err != nil {
		log.Fatal("the zstd command is needed for the --patch-from figure")
	}
	gz, ex := &kind{name: "gz", by: map[string]int{}}, &kind{name: "elf", by: map[string]int{}}
	err = filepath.WalkDir(*newDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(*newDir, p)
		oldPath := filepath.Join(*oldDir, rel)
		nb, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		ob, err := os.ReadFile(oldPath)
		if err != nil || bytes.Equal(ob, nb) || len(ob) == 0 {
			return nil
		}
		switch {
		case deflate.Is(nb) && deflate.Is(ob):
			return gz.add(zstd, rel, oldPath, p, ob, nb, []codec{deflateDelta}, *verbose)
		case elf.Is(nb) && elf.Is(ob):
			return ex.add(zstd, rel, oldPath, p, ob, nb, []codec{elfDelta, elfMapDelta}, *verbose)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	found := 0
	for _, k := range []*kind{gz, ex} {
		if k.files == 0 {
			log.Printf("no changed %s files in the pair", k.name)
			continue
		}
		found++
		k.report(*suffix)
	}
	if found == 0 {
		log.Fatal("no changed file a codec applies to")
	}
}

// A codec makes its delta and applies it (the apply is timed and checked).
type codec struct {
	name   string
	create func(old, nb []byte) ([]byte, error)
	apply  func(old []byte, d io.Reader, w io.Writer, maxOut int64) error
}

var (
	deflateDelta = codec{"deflate", func(old, nb []byte) ([]byte, error) {
		var b bytes.Buffer
		err := deflate.CreateDelta(old, nb, &b)
		return b.Bytes(), err
	}, deflate.ApplyDelta}
	elfDelta = codec{"elfx86", func(old, nb []byte) ([]byte, error) {
		eo, en, err := elf.Prepare(old, nb)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		err = delta.Create(eo, bytes.NewReader(en), &b)
		return b.Bytes(), err
	}, elf.ApplyDelta}
	elfMapDelta = codec{"elfmap", func(old, nb []byte) ([]byte, error) {
		h, base, err := elf.PrepareMap(old, nb)
		if err != nil {
			return nil, err
		}
		b := bytes.NewBuffer(h)
		err = delta.Create(base, bytes.NewReader(nb), b)
		return b.Bytes(), err
	}, elf.ApplyMapDelta}
)

func (k *kind) add(zstd, rel, oldPath, newPath string, ob, nb []byte, codecs []codec, verbose bool) error {
	pf, err := exec.Command(zstd, "-q", "-19", "--patch-from="+oldPath, "-c", newPath).Output()
	if err != nil {
		return fmt.Errorf("zstd --patch-from %s: %v", rel, err)
	}
	var plain bytes.Buffer
	if err := delta.Create(ob, bytes.NewReader(nb), &plain); err != nil {
		return err
	}
	k.files++
	k.size += int64(len(nb))
	k.patchFrom += int64(len(pf))
	k.plain += int64(plain.Len())
	ours := plain.Len()
	var sizes []string
	var best *codec
	var bestD []byte
	for i, c := range codecs {
		d, err := c.create(ob, nb)
		sizes = append(sizes, fmt.Sprintf("%s %d (%v)", c.name, len(d), err))
		if err == nil && len(d) < ours {
			ours, best, bestD = len(d), &codecs[i], d
		}
	}
	if best != nil {
		k.kept++
		k.by[best.name]++
		start := time.Now()
		var out bytes.Buffer
		if err := best.apply(ob, bytes.NewReader(bestD), &out, int64(len(nb))); err != nil || !bytes.Equal(out.Bytes(), nb) {
			return fmt.Errorf("%s: the %s delta does not give the new file (%v)", rel, best.name, err)
		}
		k.apply += time.Since(start)
	}
	k.ours += int64(ours)
	if k.name == "gz" {
		if oc, nc := gunzip(ob), gunzip(nb); len(oc) > 0 && nc != nil {
			var cd bytes.Buffer
			if delta.Create(oc, bytes.NewReader(nc), &cd) == nil {
				k.floor += int64(cd.Len())
			}
		}
	}
	if verbose {
		fmt.Printf("%-60s %8d patch-from %8d plain %8d %v\n", rel, len(nb), len(pf), plain.Len(), sizes)
	}
	return nil
}

func (k *kind) report(suffix string) {
	fmt.Printf("codecbench: %d changed %s files, %d bytes; a codec's delta kept for %d %v\n", k.files, k.name, k.size, k.kept, k.by)
	line := func(name string, v any, unit string) {
		fmt.Printf("BENCH %s_%s%s %v %s\n", k.name, name, suffix, v, unit)
	}
	line("patch_from_bytes", k.patchFrom, "B")
	line("plain_delta_bytes", k.plain, "B")
	line("ours_bytes", k.ours, "B")
	if k.floor > 0 {
		line("content_delta_bytes", k.floor, "B")
	}
	line("delta_ratio", fmt.Sprintf("%.3f", float64(k.ours)/float64(k.patchFrom)), "x")
	line("apply_seconds", fmt.Sprintf("%.3f", k.apply.Seconds()), "s")
}

// gunzip returns a gzip file's contents (nil for zlib or a bad file).
func gunzip(b []byte) []byte {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil
	}
	return out
}
