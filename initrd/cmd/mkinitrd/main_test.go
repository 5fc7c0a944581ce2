package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const dep = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/x/a-b.ko.xz: kernel/x/c.ko
kernel/x/c.ko: kernel/x/a-b.ko.xz
`

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		want    []string
		wantErr string
	}{
		{names: []string{"virtio_blk"}, want: []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko"}},
		{names: []string{"virtio_pci", "virtio_blk"}, want: []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
			"kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
			"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko"}},
		{names: []string{"virtio_ring", "virtio-ring"}, want: []string{"kernel/drivers/virtio/virtio_ring.ko"}},
		{names: []string{"nosuch"}, wantErr: "not in modules.dep"},
		{names: []string{"a_b"}, wantErr: "cycle"},
	} {
		got, err := Resolve(dep, tc.names)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve(%v) error %v, want %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Resolve(%v) (-want +got):\n%s", tc.names, diff)
		}
	}
}
