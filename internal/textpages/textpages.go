// Package textpages gives an idle service's code pages back to the system,
// and lets a job drop from its resident set the code of its earlier phases.
//
// A Go daemon's executable is mapped whole, and the kernel maps the
// cached neighbours of every page it faults on (fault-around, 64 KiB), so
// after start-up nearly all of it is resident: for upgraded 8 of its 10
// MiB idle resident set were the binary's text and read-only data, most of
// it code for jobs that run once a day or a week. Release asks the kernel
// to reclaim those pages (MADV_PAGEOUT, what Android does to the apps it
// sends to the background): they are clean, so they are dropped, not
// written; the few an idle loop runs come back by page fault, and a job
// reads back what it needs (the binary is a few MB of sequential reads,
// against the job's hundreds). MADV_RANDOM, the older hint, no longer
// turns fault-around off (Linux 6.x).
package textpages

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Release reclaims the running executable's file-backed, read-only
// mappings (text and read-only data; the writable data segment is left
// alone) and returns the bytes advised. A kernel without MADV_PAGEOUT
// (before 5.4) says EINVAL: nothing changes.
func Release() (int64, error) { return advise(unix.MADV_PAGEOUT) }

// Trim lets go of the executable's pages mapped so far without reclaiming
// them (MADV_DONTNEED: they stay in the page cache, and what runs next
// comes back by minor fault). A job calls it when it starts its most
// memory-hungry phase: the code of the phases before (manifest and
// delivery list decoding, HTTP, planning, the clone) leaves its resident
// set, 3-5 of the binary's 8-9 resident MiB.
func Trim() (int64, error) { return advise(unix.MADV_DONTNEED) }

func advise(advice int) (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMapsLine(sc.Text())
		if !ok || m.path != exe || strings.Contains(m.perms, "w") {
			continue
		}
		// The raw call: the range is an address, not memory Go owns.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice)); e != 0 {
			return total, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, e)
		}
		total += int64(m.end - m.start)
	}
	return total, sc.Err()
}

type mapping struct {
	start, end  uintptr
	perms, path string
}

// parseMapsLine reads "start-end perms offset dev inode path" from a line
// of /proc/PID/maps.
func parseMapsLine(line string) (mapping, bool) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return mapping{}, false
	}
	lo, hi, found := strings.Cut(f[0], "-")
	if !found {
		return mapping{}, false
	}
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return mapping{}, false
	}
	return mapping{start: uintptr(s), end: uintptr(e), perms: f[1], path: strings.Join(f[5:], " ")}, true
}
