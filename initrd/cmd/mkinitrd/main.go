// Command mkinitrd builds the upgrade initramfs: a gzip-compressed newc cpio
// holding /init (the static cmd/init binary), the kernel modules needed to
// reach the root device, and lib/modules/initrd.order listing them in load
// order. No busybox, no shell: nothing in the image can do more than /init.
//
//	mkinitrd -init bin/init -kmod /lib/modules/$(uname -r) -modules list.txt -o initrd.cpio.gz
//
// The module list names top-level modules (virtio_blk, mmc_block, ...); their
// dependencies come from the kernel's modules.dep, so a distro lists only
// what its root device needs.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"laptop.org/upgrade/initrd"
	"laptop.org/upgrade/initrd/internal/cpio"
)

func main() {
	var o options
	flag.StringVar(&o.initBin, "init", "", "static init binary to install as /init")
	flag.StringVar(&o.kmod, "kmod", "", "kernel module directory holding modules.dep (e.g. /lib/modules/VERSION)")
	flag.StringVar(&o.modList, "modules", "", "file naming the modules to include, one per line (# comments)")
	flag.StringVar(&o.out, "o", "initrd.cpio.gz", "output file")
	flag.StringVar(&o.slot, "slot", "", "build the image of this slot tree: its kernel (boot/vmlinuz or vmlinuz) names the release, "+
		"-kmod defaults to its lib/modules/RELEASE, and the image goes to boot/initrd.img-RELEASE with the initrd.img link beside the kernel's")
	flag.BoolVar(&o.sequential, "sequential", false, "make /init load the modules one at a time (no dependency lists in the order file)")
	flag.Parse()
	if err := build(o); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitrd:", err)
		os.Exit(1)
	}
}

type options struct {
	initBin, kmod, modList, out, slot string
	sequential                        bool
}

// build is run, or the slot mode around it.
func build(o options) error {
	if o.slot == "" {
		return run(o.initBin, o.kmod, o.modList, o.out, o.sequential)
	}
	return buildSlot(o)
}

func run(initBin, kmod, modList, out string, sequential bool) error {
	if initBin == "" {
		return fmt.Errorf("-init is required")
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		return err
	}
	var mods []string
	var depText []byte
	if modList != "" {
		want, err := readList(modList)
		if err != nil {
			return err
		}
		if len(want) > 0 && kmod == "" {
			return fmt.Errorf("-modules needs -kmod")
		}
		if depText, err = os.ReadFile(filepath.Join(kmod, "modules.dep")); err != nil {
			return fmt.Errorf("%w (run depmod)", err)
		}
		builtin, err := os.ReadFile(filepath.Join(kmod, "modules.builtin"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		want = dropBuiltin(want, string(builtin))
		if mods, err = Resolve(string(depText), want); err != nil {
			return err
		}
	}

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w := cpio.NewWriter(zw)
	recs := []cpio.Record{
		{Name: "dev", Mode: cpio.TypeDir | 0o755},
		// The kernel opens /dev/console for /init's stdout before any
		// devtmpfs exists; without this node the console stays silent.
		{Name: "dev/console", Mode: cpio.TypeChar | 0o600, RMajor: 5, RMin: 1},
		{Name: "proc", Mode: cpio.TypeDir | 0o755},
		{Name: "sys", Mode: cpio.TypeDir | 0o755},
		{Name: "run", Mode: cpio.TypeDir | 0o755},
		{Name: "newroot", Mode: cpio.TypeDir | 0o755},
		{Name: "lib", Mode: cpio.TypeDir | 0o755},
		{Name: initrd.ModuleDir, Mode: cpio.TypeDir | 0o755},
		{Name: "init", Mode: cpio.TypeReg | 0o755, Data: initData},
	}
	deps := depMap(string(depText))
	var order strings.Builder
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(kmod, m))
		if err != nil {
			return err
		}
		if data, err = decompress(m, data); err != nil {
			return err
		}
		recs = append(recs, cpio.Record{Name: path.Join(initrd.ModuleDir, imageName(m)), Mode: cpio.TypeReg | 0o644, Data: data})
		if sequential {
			order.WriteString(imageName(m) + "\n")
		} else {
			order.WriteString(OrderLine(m, deps[m]) + "\n")
		}
	}
	recs = append(recs, cpio.Record{Name: initrd.ModuleOrder, Mode: cpio.TypeReg | 0o644, Data: []byte(order.String())})
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Printf("mkinitrd: %s: %d KiB, %d modules: %s\n", out, (buf.Len()+1023)/1024, len(mods), strings.Join(baseNames(mods), " "))
	return nil
}

func baseNames(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, strings.TrimSuffix(imageName(p), ".ko"))
	}
	return out
}

func readList(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		names = append(names, strings.Fields(line)...)
	}
	return names, sc.Err()
}

// dropBuiltin leaves out the listed modules that this kernel has built in
// (its modules.builtin), so one list serves kernels that differ there
// (Debian's 6.1 cloud kernel has virtio_pci as a module, 6.12 built in).
func dropBuiltin(want []string, modulesBuiltin string) []string {
	builtin := map[string]bool{}
	for _, l := range strings.Fields(modulesBuiltin) {
		builtin[modName(l)] = true
	}
	var keep []string
	for _, n := range want {
		if builtin[strings.ReplaceAll(n, "-", "_")] {
			fmt.Fprintf(os.Stderr, "mkinitrd: %s is built into this kernel\n", n)
			continue
		}
		keep = append(keep, n)
	}
	return keep
}

// modName is the name modprobe uses: file name without .ko[.xz|.zst|.gz],
// dashes as underscores.
func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// depMap parses modules.dep: "path.ko: dep.ko dep.ko ..." per line, the
// dependencies being the transitive closure.
func depMap(modulesDep string) map[string][]string {
	deps := map[string][]string{}
	for _, line := range strings.Split(modulesDep, "\n") {
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[strings.TrimSpace(p)] = strings.Fields(rest)
	}
	return deps
}

// Resolve returns the module files (relative to the module dir) for the
// named modules and all their dependencies, each dependency before the
// modules that need it, each once. modules.dep lines are
// "path.ko: dep.ko dep.ko ..."; a name missing from it is an error, so a
// typo in the list fails the build rather than the boot.
func Resolve(modulesDep string, names []string) ([]string, error) {
	deps := depMap(modulesDep)
	paths := map[string]string{}
	for p := range deps {
		paths[modName(p)] = p
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		switch state[p] {
		case 1:
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(chain, p), " -> "))
		case 2:
			return nil
		}
		state[p] = 1
		// modules.dep lists the transitive closure; visiting each entry
		// (sorted for a reproducible image) still yields a valid order.
		ds := append([]string(nil), deps[p]...)
		sort.Strings(ds)
		for _, d := range ds {
			if err := visit(d, append(chain, p)); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		p, ok := paths[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("module %q not in modules.dep (built in, misspelt, or not in this kernel)", n)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
