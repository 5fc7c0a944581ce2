package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os/exec"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compressed modules (.ko.xz, .ko.zst, .ko.gz, as Debian's kernels from
// 6.x on may ship them) are decompressed here, once, at build time, rather
// than by the kernel at every boot: the image is compressed as a whole
// anyway, so this costs no space. The module signature is appended to the
// uncompressed module before the distro compresses it, so the file packed
// here is exactly the signed one: decompression neither strips nor breaks
// the signature, and the kernel checks it as before.

// imageName is the module's file name in the image: its base name without
// the compression suffix.
func imageName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(b, ".ko"+ext) {
			return strings.TrimSuffix(b, ext)
		}
	}
	return b
}

// decompress returns the uncompressed module for a compressed file name,
// data unchanged otherwise.
func decompress(p string, data []byte) ([]byte, error) {
	var out []byte
	var err error
	switch {
	case strings.HasSuffix(p, ".ko.zst"):
		var d *zstd.Decoder
		if d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1)); err == nil {
			out, err = d.DecodeAll(data, nil)
			d.Close()
		}
	case strings.HasSuffix(p, ".ko.gz"):
		var r *gzip.Reader
		if r, err = gzip.NewReader(bytes.NewReader(data)); err == nil {
			out, err = io.ReadAll(r)
		}
	case strings.HasSuffix(p, ".ko.xz"):
		// No xz decoder in Go's standard library or this module's
		// dependencies; xz-utils is on every Debian system.
		cmd := exec.Command("xz", "-dc")
		cmd.Stdin = bytes.NewReader(data)
		out, err = cmd.Output()
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", p, err)
	}
	return out, nil
}

// OrderLine is the module's line in the image's order file (see
// initrd.ModuleOrder): its image name and those of its dependencies, which
// is what lets /init load independent modules at the same time.
func OrderLine(p string, deps []string) string {
	var names []string
	for _, d := range deps {
		names = append(names, imageName(d))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return imageName(p) + ":"
	}
	return imageName(p) + ": " + strings.Join(names, " ")
}
