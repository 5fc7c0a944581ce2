package publish

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/repo"
)

// xz packs (Options.Best, when the xz command is installed). LZMA2 after
// the x86 branch filter beats zstd -19 on executables and libraries, but
// barely on text and deltas, and clients decode it several times slower
// (bench/manual.md, "Figures behind design choices"), so a pack is stored
// as xz only where it saves at least xzMinSaving: bytes on a school link
// cost more than a core's time, but not for a percent.
const (
	xzMinSaving = 0.05
	// xzLoneMax: a new content of at least packItemMax bytes with no
	// delta, and at most this, is also offered alone in an xz pack when
	// that saves xzMinSaving over its object (xz -9e takes about a second
	// a MiB here).
	xzLoneMax = 32 << 20
)

var xzOnce = sync.OnceValue(func() string { p, _ := exec.LookPath("xz"); return p })

// smallerXZ compresses raw with the xz command (with the x86 filter when
// raw holds an ELF file, keeping whichever of the two is smaller) and
// returns the result when it is at most (1 - xzMinSaving) × than bytes.
// Without the xz command it returns false.
func smallerXZ(raw []byte, than int64) ([]byte, bool, error) {
	xz := xzOnce()
	if xz == "" || len(raw) == 0 {
		return nil, false, nil
	}
	filters := [][]string{nil}
	if bytes.Contains(raw, []byte("\x7fELF")) {
		filters = append(filters, []string{"--x86"})
	}
	var best []byte
	for _, f := range filters {
		out, err := runXZ(xz, f, raw)
		if err != nil {
			return nil, false, err
		}
		if best == nil || len(out) < len(best) {
			best = out
		}
	}
	if float64(len(best)) > (1-xzMinSaving)*float64(than) {
		return nil, false, nil
	}
	return best, true, nil
}

// runXZ runs xz -9e single-threaded (the output is the same on every run)
// with a dictionary no larger than the input needs (a decoder allocates
// what the header says) nor than repo.XZDictMax, and a CRC32 check.
func runXZ(xz string, filters []string, raw []byte) ([]byte, error) {
	dict := 1 << 16
	for dict < len(raw) && dict < repo.XZDictMax {
		dict <<= 1
	}
	args := append([]string{"-q", "-c", "-T1", "--format=xz", "--check=crc32"}, filters...)
	args = append(args, "--lzma2=preset=9e,dict="+strconv.Itoa(dict), "-")
	cmd := exec.Command(xz, args...)
	var out, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(raw), &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xz: %v: %s", err, stderr.String())
	}
	return out.Bytes(), nil
}

// loneXZPacks makes a one-item xz pack for each big new content that xz
// stores xzMinSaving smaller than its object (a client fetches whichever
// is cheaper).
func loneXZPacks(ctx context.Context, st store, items []packItem, dl *repo.Delivery, res *Result) ([]*repo.Pack, error) {
	stored := map[digest.Digest]int64{}
	for _, o := range dl.Objects {
		stored[o.SHA256] = o.StoredSize
	}
	packs := make([]*repo.Pack, len(items))
	err := parallel(ctx, len(items), func(i int) error {
		it := items[i]
		than, ok := stored[it.sha]
		if !ok {
			return nil
		}
		b, err := it.read()
		if err != nil {
			return err
		}
		if digest.Of(b) != it.sha || int64(len(b)) != it.size {
			return fmt.Errorf("pack item %s: content changed while publishing", it.path)
		}
		x, ok, err := smallerXZ(b, than)
		if err != nil || !ok {
			return err
		}
		p := &repo.Pack{Codec: repo.CodecXZ, Items: []repo.PackItem{{SHA256: it.sha, Size: it.size}}}
		p, added, err := storePack(st, p, x)
		if err != nil {
			return err
		}
		packs[i] = p
		res.addStored(added)
		return nil
	})
	var out []*repo.Pack
	for _, p := range packs {
		if p != nil {
			out = append(out, p)
		}
	}
	return out, err
}
