package hostile

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// traced is one system call, with the line numbers where it started and
// where it returned (different when strace split it around another thread).
type traced struct {
	name, args, ret string
	start, end      int
}

var (
	reFull       = regexp.MustCompile(`^(\d+)\s+(\w+)\((.*)\)\s+=\s+(.*)$`)
	reUnfinished = regexp.MustCompile(`^(\d+)\s+(\w+)\((.*?)\s*<unfinished \.\.\.>$`)
	reResumed    = regexp.MustCompile(`^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(.*)$`)
	reFdPath     = regexp.MustCompile(`(?:-?\d+|AT_FDCWD)<([^>]*)>`)
	reString     = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

// parseTrace reads `strace -f -y` output into calls in completion order.
func parseTrace(t *testing.T, path string) []traced {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []traced
	open := map[string]traced{} // pid -> unfinished call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 0; sc.Scan(); n++ {
		l := sc.Text()
		if m := reFull.FindStringSubmatch(l); m != nil {
			out = append(out, traced{name: m[2], args: m[3], ret: m[4], start: n, end: n})
		} else if m := reUnfinished.FindStringSubmatch(l); m != nil {
			open[m[1]] = traced{name: m[2], args: m[3], start: n}
		} else if m := reResumed.FindStringSubmatch(l); m != nil {
			c, ok := open[m[1]]
			if !ok || c.name != m[2] {
				continue
			}
			delete(open, m[1])
			c.args += m[3]
			c.ret, c.end = m[4], n
			out = append(out, c)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// pathArgs resolves the (dirfd, name) pairs of a call's arguments to
// absolute paths, using strace -y's fd annotations.
func pathArgs(args string) []string {
	var paths []string
	rest := args
	for {
		loc := reFdPath.FindStringSubmatchIndex(rest)
		if loc == nil {
			break
		}
		dir := rest[loc[2]:loc[3]]
		after := rest[loc[1]:]
		if s := reString.FindStringSubmatchIndex(after); s != nil && strings.HasPrefix(strings.TrimLeft(after, ", "), `"`) {
			name := after[s[2]:s[3]]
			if !strings.HasPrefix(name, "/") {
				name = filepath.Join(dir, name)
			}
			paths = append(paths, name)
			rest = after[s[1]:]
			continue
		}
		paths = append(paths, dir)
		rest = after
	}
	return paths
}

// retPath is the path strace -y annotates a returned fd with.
func retPath(ret string) string {
	if m := reFdPath.FindStringSubmatch(ret); m != nil {
		return m[1]
	}
	return ""
}

// TestSyscallOrder traces a whole `upgraded --once --activate` and checks
// the durability protocol from the system calls themselves:
//   - every file created with content and renamed into place under the root
//     was covered by an fsync of that file or a syncfs between its creation
//     and the rename;
//   - every such rename is followed by an fsync of its directory or a syncfs;
//   - the boot pointer's rename comes after a syncfs of the new slot that
//     completed after the last rename into the slot.
func TestSyscallOrder(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatalf("strace: %v (make deps installs it)", err)
	}
	w := newWorld(t, 1)
	keys := w.writeKeys()
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := w.onceCmd(keys)
	cmd.Args = append([]string{"strace", "-f", "-qq", "-y", "-o", trace,
		"-e", "trace=%file,fsync,fdatasync,sync_file_range,syncfs", cmd.Path}, cmd.Args[1:]...)
	cmd.Path, _ = exec.LookPath("strace")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("traced upgrade: %v\n%s", err, out)
	}
	calls := parseTrace(t, trace)
	root, slot := w.root, filepath.Join(w.root, "b")
	pointer := w.cfg.Root.BootPointer()

	created := map[string]int{} // path -> end of the creating openat
	var fsyncs = map[string][]int{}
	var syncfs []traced
	type rename struct {
		src, dst   string
		start, end int
	}
	var renames []rename
	for _, c := range calls {
		if strings.HasPrefix(c.ret, "-1") {
			continue
		}
		switch c.name {
		case "openat", "open", "creat":
			if strings.Contains(c.args, "O_CREAT") || c.name == "creat" {
				if p := retPath(c.ret); p != "" {
					created[p] = c.end
				}
			}
		case "fsync", "fdatasync":
			if p := pathArgs(c.args); len(p) > 0 {
				fsyncs[p[0]] = append(fsyncs[p[0]], c.end)
			}
		case "syncfs":
			syncfs = append(syncfs, c)
		case "rename", "renameat", "renameat2":
			if p := pathArgs(c.args); len(p) >= 2 && strings.HasPrefix(p[1], root+"/") {
				renames = append(renames, rename{src: p[0], dst: p[1], start: c.start, end: c.end})
			}
		}
	}
	syncedBetween := func(path string, from, to int) bool {
		for _, e := range fsyncs[path] {
			if e > from && e < to {
				return true
			}
		}
		for _, s := range syncfs {
			if s.end > from && s.end < to {
				return true
			}
		}
		return false
	}
	syncedAfter := func(dir string, from int) bool {
		for _, e := range fsyncs[dir] {
			if e > from {
				return true
			}
		}
		for _, s := range syncfs {
			if s.start > from {
				return true
			}
		}
		return false
	}
	var checked, metaOnly, inSlot, lastSlotRename int
	pointerAt := -1
	for _, r := range renames {
		if r.dst == pointer {
			pointerAt = r.start
		}
		if strings.HasPrefix(r.dst, slot+"/") {
			inSlot++
			lastSlotRename = max(lastSlotRename, r.end)
		}
		c, ok := created[r.src]
		if !ok {
			metaOnly++ // a hard link, symlink or node made at a temp name: no data to sync
			continue
		}
		checked++
		if !syncedBetween(r.src, c, r.start) {
			t.Errorf("rename %s -> %s (trace line %d) is not preceded by an fsync of the file or a syncfs since its creation (line %d)", r.src, r.dst, r.start+1, c+1)
		}
		if !syncedAfter(filepath.Dir(r.dst), r.end) {
			t.Errorf("rename %s -> %s (trace line %d) is not followed by an fsync of %s or a syncfs", r.src, r.dst, r.start+1, filepath.Dir(r.dst))
		}
	}
	if pointerAt < 0 {
		t.Fatalf("no rename onto the boot pointer %s in the trace", pointer)
	}
	slotSynced := false
	for _, s := range syncfs {
		if p := pathArgs(s.args); len(p) > 0 && (p[0] == slot || strings.HasPrefix(p[0], slot+"/")) && s.start > lastSlotRename && s.end < pointerAt {
			slotSynced = true
		}
	}
	if !slotSynced {
		t.Errorf("the boot pointer rename (trace line %d) does not follow a syncfs of slot b issued after its last rename (line %d)", pointerAt+1, lastSlotRename+1)
	}
	if checked == 0 || inSlot == 0 {
		t.Fatalf("trace has %d checked renames, %d into the slot: parsing failed?", checked, inSlot)
	}
	t.Logf("%d calls traced; %d renames of written files checked, %d metadata-only renames, %d into slot b, %d syncfs", len(calls), checked, metaOnly, inSlot, len(syncfs))
}
