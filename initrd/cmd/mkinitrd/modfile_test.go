package main

import (
	"bytes"
	"compress/gzip"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

func TestOrderLine(t *testing.T) {
	for _, tc := range []struct {
		path string
		deps []string
		want string
	}{
		{"kernel/drivers/virtio/virtio_ring.ko", nil, "virtio_ring.ko:"},
		{"kernel/drivers/block/virtio_blk.ko", []string{"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko"},
			"virtio_blk.ko: virtio.ko virtio_ring.ko"},
		{"kernel/x/a.ko.zst", []string{"kernel/y/b.ko.xz", "kernel/y/c.ko.gz"}, "a.ko: b.ko c.ko"},
	} {
		if got := OrderLine(tc.path, tc.deps); got != tc.want {
			t.Errorf("OrderLine(%s, %v) = %q, want %q", tc.path, tc.deps, got, tc.want)
		}
	}
}

// TestDecompress checks that a compressed module is packed byte for byte as
// the signed .ko it was made from (the signature is the file's tail).
func TestDecompress(t *testing.T) {
	ko := append(bytes.Repeat([]byte("\x7fELF module text "), 200), []byte("~Module signature appended~\n")...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(ko)
	zw.Close()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := enc.EncodeAll(ko, nil)
	enc.Close()
	cases := map[string][]byte{"m.ko": ko, "m.ko.gz": gz.Bytes(), "m.ko.zst": zst}
	if _, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command("xz", "-c", "--check=crc32")
		cmd.Stdin = bytes.NewReader(ko)
		xz, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		cases["m.ko.xz"] = xz
	}
	for name, data := range cases {
		got, err := decompress(name, data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, ko) {
			t.Errorf("%s: decompressed %d bytes differ from the module", name, len(got))
		}
		if diff := cmp.Diff("m.ko", imageName("kernel/x/"+name)); diff != "" {
			t.Errorf("imageName(%s) (-want +got):\n%s", name, diff)
		}
	}
	if _, err := decompress("m.ko.zst", []byte("not zstd")); err == nil {
		t.Error("a corrupt .ko.zst was packed")
	}
}
