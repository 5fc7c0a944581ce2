package initrd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ModuleDir is where mkinitrd puts the kernel modules in the image, and
// ModuleOrder the file listing them, one per line, already in dependency
// order: /init does no resolving against modules.dep of its own.
//
// A line is "file.ko" or "file.ko: dep.ko dep.ko" naming, by file name, the
// modules (earlier in the file) it needs. The dependencies are what lets
// /init load independent modules at the same time (see Levels); a line
// without them depends on every line before it, so an order file written
// by hand or by an older mkinitrd still loads strictly in sequence.
const (
	ModuleDir   = "lib/modules"
	ModuleOrder = "lib/modules/initrd.order"
)

// Module is one line of the order file.
type Module struct {
	File string   // file name under ModuleDir
	Deps []string // file names of the modules it needs
	// Sequential marks a line without a dependency list: it waits for
	// every module before it.
	Sequential bool
}

// ParseModuleOrder parses the order file: blank lines and # comments ignored.
func ParseModuleOrder(r io.Reader) ([]Module, error) {
	var mods []Module
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		file, deps, hasDeps := strings.Cut(line, ":")
		file = strings.TrimSpace(file)
		if file == "" || strings.ContainsAny(file, " \t/") {
			return nil, fmt.Errorf("module order line %q: want \"file.ko[: dep.ko ...]\"", line)
		}
		mods = append(mods, Module{File: file, Deps: strings.Fields(deps), Sequential: !hasDeps})
	}
	return mods, sc.Err()
}

// Levels groups the modules into load rounds: every module of a round
// depends only on modules of earlier rounds, so a round's modules can be
// given to finit_module at the same time and the next round starts when
// all of them have returned. A module lands in the first round after its
// last dependency, keeping the file's order within a round. A dependency
// that is not earlier in the file is an error (a broken image must fail
// loudly, not load a module before what it needs).
func Levels(mods []Module) ([][]string, error) {
	level := map[string]int{}
	var rounds [][]string
	for i, m := range mods {
		if _, dup := level[m.File]; dup {
			return nil, fmt.Errorf("module %s listed twice", m.File)
		}
		l := 0
		if m.Sequential {
			// "Everything before" is the highest round so far, which
			// need not be the previous line's.
			for _, p := range mods[:i] {
				l = max(l, level[p.File]+1)
			}
		}
		for _, d := range m.Deps {
			dl, ok := level[d]
			if !ok {
				return nil, fmt.Errorf("module %s needs %s, which is not earlier in the order file", m.File, d)
			}
			l = max(l, dl+1)
		}
		level[m.File] = l
		for len(rounds) <= l {
			rounds = append(rounds, nil)
		}
		rounds[l] = append(rounds[l], m.File)
	}
	return rounds, nil
}

// ModuleTime is how long one finit_module took, for the bench.
type ModuleTime struct {
	File  string
	Round int
	D     time.Duration
}

// loadModules loads every module of the order file with finit_module, one
// round of independent modules at a time, each module of a round on its own
// goroutine. The kernel verifies the signature, relocates and runs the init
// (which probes devices) inside the call, so independent modules overlap
// on a multi-core machine and while a probe waits for its device. A module
// already present (built in, or loaded by a dependency) is fine; an image
// without an order file has nothing to load.
func loadModules(s *State) error {
	f, err := os.Open(filepath.Join(s.Prefix, ModuleOrder))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	mods, err := ParseModuleOrder(f)
	f.Close()
	if err != nil {
		return err
	}
	rounds, err := Levels(mods)
	if err != nil {
		return err
	}
	for r, files := range rounds {
		times := make([]ModuleTime, len(files))
		errs := make([]error, len(files))
		var wg sync.WaitGroup
		for i, file := range files {
			wg.Go(func() {
				t0 := time.Now()
				errs[i] = loadModule(filepath.Join(s.Prefix, ModuleDir, file))
				times[i] = ModuleTime{File: file, Round: r, D: time.Since(t0)}
			})
		}
		wg.Wait()
		s.Modules = append(s.Modules, times...)
		if err := errors.Join(errs...); err != nil {
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
		// mkinitrd decompresses modules at build time; this is for an
		// image made otherwise. The kernel decompresses (5.17+).
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", filepath.Base(path), err)
	}
	return nil
}
