package initrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"laptop.org/upgrade/errdefs"
)

// There is no udev or blkid in the image: LABEL=, UUID= and PARTUUID= are
// found by reading superblocks and partition tables of the devices sysfs
// lists. Only the ext family is recognised, which is what the slots live on.

// ext4 superblock, 1024 bytes into the device.
const (
	extSuperOffset = 1024
	extMagicOff    = 0x38
	extUUIDOff     = 0x68
	extLabelOff    = 0x78
	extMagic       = 0xEF53
)

// ExtSuper is what /init needs from an ext2/3/4 superblock.
type ExtSuper struct {
	UUID  string // lower-case 8-4-4-4-12
	Label string
}

// ReadExtSuper reads the ext superblock of the device (or image) at r.
// errdefs.ErrNotFound means "not ext", not an I/O failure.
func ReadExtSuper(r io.ReaderAt) (ExtSuper, error) {
	var sb [256]byte
	if _, err := r.ReadAt(sb[:], extSuperOffset); err != nil {
		if errors.Is(err, io.EOF) {
			return ExtSuper{}, fmt.Errorf("too small for ext: %w", errdefs.ErrNotFound)
		}
		return ExtSuper{}, err
	}
	if binary.LittleEndian.Uint16(sb[extMagicOff:]) != extMagic {
		return ExtSuper{}, fmt.Errorf("no ext magic: %w", errdefs.ErrNotFound)
	}
	label := sb[extLabelOff : extLabelOff+16]
	if i := bytes.IndexByte(label, 0); i >= 0 {
		label = label[:i]
	}
	return ExtSuper{UUID: formatUUID(sb[extUUIDOff : extUUIDOff+16]), Label: string(label)}, nil
}

// formatUUID prints 16 bytes in RFC 4122 byte order, as blkid does for ext.
func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// formatGUID prints a GPT GUID: the first three fields are little-endian.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// PartUUID returns the PARTUUID of partition number n (1-based) on the disk
// at r: the GPT unique partition GUID, or for an MBR disk the kernel's
// "SSSSSSSS-NN" form (disk signature, partition number in hex).
func PartUUID(r io.ReaderAt, n int, sectorSize int64) (string, error) {
	var mbr [512]byte
	if _, err := r.ReadAt(mbr[:], 0); err != nil {
		return "", fmt.Errorf("read partition table: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return "", fmt.Errorf("no partition table: %w", errdefs.ErrNotFound)
	}
	if mbr[446+4] != 0xEE { // not a protective MBR: a plain MBR disk
		return fmt.Sprintf("%08x-%02x", binary.LittleEndian.Uint32(mbr[0x1B8:]), n), nil
	}
	var hdr [92]byte
	if _, err := r.ReadAt(hdr[:], sectorSize); err != nil {
		return "", fmt.Errorf("read GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return "", fmt.Errorf("protective MBR without GPT header: %w", errdefs.ErrCorrupt)
	}
	lba := binary.LittleEndian.Uint64(hdr[0x48:])
	count := binary.LittleEndian.Uint32(hdr[0x50:])
	size := binary.LittleEndian.Uint32(hdr[0x54:])
	if n < 1 || uint32(n) > count || size < 128 || size > 4096 || lba > 1<<40 {
		return "", fmt.Errorf("partition %d not in GPT (%d entries of %d bytes): %w", n, count, size, errdefs.ErrNotFound)
	}
	var guid [16]byte
	if _, err := r.ReadAt(guid[:], int64(lba)*sectorSize+int64(n-1)*int64(size)+16); err != nil {
		return "", fmt.Errorf("read GPT entry %d: %w", n, err)
	}
	return formatGUID(guid[:]), nil
}

// findDevice looks once for the device spec names, under prefix (whose
// sys/ and dev/ are sysfs and devtmpfs). It returns the device node path,
// or errdefs.ErrNotFound when no device matches yet.
func findDevice(prefix string, spec RootSpec) (string, error) {
	if spec.Kind == "path" {
		p := filepath.Join(prefix, spec.Value)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", spec, errdefs.ErrNotFound)
		}
		return p, nil
	}
	sysBlock := filepath.Join(prefix, "sys", "class", "block")
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", fmt.Errorf("list block devices: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		// An empty device (an unused loop, an empty CD drive) has size 0;
		// skipping it avoids opening devices that can only fail or stall.
		if sz, _ := os.ReadFile(filepath.Join(sysBlock, name, "size")); strings.TrimSpace(string(sz)) == "0" {
			continue
		}
		dev := filepath.Join(prefix, "dev", name)
		if ok, _ := matches(prefix, sysBlock, name, dev, spec); ok {
			return dev, nil
		}
	}
	return "", fmt.Errorf("no block device with %s: %w", spec, errdefs.ErrNotFound)
}

func matches(prefix, sysBlock, name, dev string, spec RootSpec) (bool, error) {
	switch spec.Kind {
	case "LABEL", "UUID":
		f, err := os.Open(dev)
		if err != nil {
			return false, err
		}
		defer f.Close()
		sb, err := ReadExtSuper(f)
		if err != nil {
			return false, err
		}
		if spec.Kind == "LABEL" {
			return sb.Label == spec.Value, nil
		}
		return strings.EqualFold(sb.UUID, spec.Value), nil
	case "PARTUUID":
		num, err := os.ReadFile(filepath.Join(sysBlock, name, "partition"))
		if err != nil {
			return false, nil // a whole disk has no PARTUUID
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(num)))
		if err != nil {
			return false, err
		}
		real, err := filepath.EvalSymlinks(filepath.Join(sysBlock, name))
		if err != nil {
			return false, err
		}
		disk := filepath.Base(filepath.Dir(real))
		ss := int64(512)
		if b, err := os.ReadFile(filepath.Join(sysBlock, disk, "queue", "logical_block_size")); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v >= 512 {
				ss = v
			}
		}
		f, err := os.Open(filepath.Join(prefix, "dev", disk))
		if err != nil {
			return false, err
		}
		defer f.Close()
		id, err := PartUUID(f, n, ss)
		if err != nil {
			return false, err
		}
		return strings.EqualFold(id, spec.Value), nil
	}
	return false, fmt.Errorf("unknown root kind %q", spec.Kind)
}

// waitDevice looks for the device until it is found or wait has passed.
// Module probing usually creates the device before finit_module returns,
// so the first scan normally finds it; but USB and SD hosts announce theirs
// later. After a miss it opens the kernel's uevent socket, scans again (an
// event between the miss and the socket would otherwise be lost), and then
// sleeps on the socket between scans, so a device that appears is seen at
// once rather than at the next tick of a coarse poll. The timeout on the
// socket is a backstop for missed events.
//
// w.D is the time from the first scan's start to the start of the scan
// that succeeded (all of it on failure): the device wait the boot-cost
// figure leaves out. The scans themselves, the successful one included,
// are work and are counted only in so far as they fall between the two.
func waitDevice(prefix string, spec RootSpec, wait time.Duration) (dev string, w DeviceWait, err error) {
	start := time.Now()
	deadline := start.Add(wait)
	ue := uevents{fd: -1}
	defer func() { ue.close() }()
	for {
		scan := time.Now()
		dev, err := findDevice(prefix, spec)
		w.Scans++
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
			w.D = scan.Sub(start)
			return dev, w, err
		}
		if w.Scans == 1 {
			w.FirstMiss = err.Error()
			ue = openUevents()
			w.Uevents = ue.fd >= 0
			continue
		}
		left := time.Until(deadline)
		if left <= 0 {
			w.D = time.Since(start)
			return "", w, fmt.Errorf("%w after waiting %v (is the driver in the image's module list?)", err, wait)
		}
		ue.wait(min(left, ue.tick()))
	}
}

// DeviceWait is how find-root's wait went, for the boot-cost report.
type DeviceWait struct {
	D         time.Duration // before the successful scan
	Scans     int
	FirstMiss string // why the first scan found nothing, if it did not
	Uevents   bool   // woken by the uevent socket (else polled)
}
