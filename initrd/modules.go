package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ModuleDir is where mkinitrd puts the kernel modules in the image, and
// ModuleOrder the file listing them, one path relative to ModuleDir per line,
// already in dependency order: /init does no resolving of its own.
const (
	ModuleDir   = "lib/modules"
	ModuleOrder = "lib/modules/initrd.order"
)

// ReadModuleOrder parses the order file: blank lines and # comments ignored.
func ReadModuleOrder(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mods []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mods = append(mods, line)
	}
	return mods, sc.Err()
}

// loadModules loads every module of the order file with finit_module. A
// module already present (built in, or loaded as a dependency) is fine; an
// image without an order file has nothing to load.
func loadModules(s *State) error {
	mods, err := ReadModuleOrder(filepath.Join(s.Prefix, ModuleOrder))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, m := range mods {
		if err := loadModule(filepath.Join(s.Prefix, ModuleDir, m)); err != nil {
			return err
		}
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE // the kernel decompresses (5.17+)
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	return nil
}
