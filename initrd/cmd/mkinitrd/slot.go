package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"laptop.org/upgrade/initrd"
)

// buildSlot builds a slot's own initrd from the slot's own kernel modules,
// where /init looks for it (initrd.SlotKernelPaths): the kernel's banner
// names the release, the image is boot/initrd.img-RELEASE and the initrd
// link beside the kernel link points at it. Run on a slot tree before it is
// published, the image is then an ordinary slot file (published, fetched
// and verified with the rest); the build is byte-for-byte reproducible.
func buildSlot(o options) error {
	root, err := os.OpenRoot(o.slot)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, p := range initrd.SlotKernelPaths {
		if _, err := root.Lstat(p[0]); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f, err := root.Open(p[0])
		if err != nil {
			return fmt.Errorf("slot kernel %s: %w", p[0], err)
		}
		banner, err := initrd.KernelBanner(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("slot kernel %s: %w", p[0], err)
		}
		release, _, _ := strings.Cut(banner, " ")
		if release == "" || strings.ContainsAny(release, "/\x00") {
			return fmt.Errorf("slot kernel %s: bad release %q", p[0], release)
		}
		kmod := o.kmod
		if kmod == "" {
			kmod = filepath.Join(o.slot, "lib", "modules", release)
		}
		image := path.Join("boot", "initrd.img-"+release)
		if err := root.MkdirAll("boot", 0o755); err != nil {
			return err
		}
		if err := run(o.initBin, kmod, o.modList, filepath.Join(o.slot, image), o.sequential); err != nil {
			return err
		}
		target, err := filepath.Rel(path.Dir(p[1]), image)
		if err != nil {
			return err
		}
		return replaceLink(root, target, p[1])
	}
	return fmt.Errorf("slot %s has no kernel (%s): %w", o.slot, initrd.SlotKernelPaths[0][0], fs.ErrNotExist)
}

// replaceLink points link at target, by rename so it is never missing.
func replaceLink(root *os.Root, target, link string) error {
	if t, err := root.Readlink(link); err == nil && t == target {
		return nil
	}
	tmp := link + ".mkinitrd-tmp"
	root.Remove(tmp)
	if err := root.Symlink(target, tmp); err != nil {
		return err
	}
	if err := root.Rename(tmp, link); err != nil {
		root.Remove(tmp)
		return err
	}
	return nil
}
