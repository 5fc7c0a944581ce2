package export

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/fetch"
	"laptop.org/upgrade/repo"
)

// copyAll copies the blobs, then makes them durable with one syncfs, then
// writes the metadata, timestamp.json last: a disk pulled out early holds
// no timestamp that names missing files. Files already there with the right digest are kept (a
// second export to the same disk adds what is new). No chmod: removable
// disks are often FAT, which refuses it.
func copyAll(ctx context.Context, src source, to string, need blobSet, meta []string, res *Result) error {
	if err := os.MkdirAll(to, 0755); err != nil {
		return err
	}
	for _, b := range need.sorted() {
		if err := ctx.Err(); err != nil {
			return err
		}
		dst := filepath.Join(to, filepath.FromSlash(b.Path))
		res.Files++
		res.Bytes += b.Size
		if hasBlob(dst, b) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0755); err != nil {
			return err
		}
		if err := writeFile(dst, false, func(w io.Writer) error { return copyBlob(src, b, w) }); err != nil {
			return err
		}
		res.Copied++
	}
	if err := atomicfile.SyncFS(to); err != nil {
		return err
	}
	for _, p := range meta {
		b, err := os.ReadFile(filepath.Join(src.dir, p))
		if err != nil {
			return err
		}
		mutable := p == repo.TimestampPath || p == repo.RootPath
		if err := writeFile(filepath.Join(to, p), mutable, func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// hasBlob reports whether dst already holds exactly b; anything else there
// is replaced.
func hasBlob(dst string, b fetch.Blob) bool {
	f, err := os.Open(dst)
	if err != nil {
		return false
	}
	defer f.Close()
	d, n, err := digest.FromReader(f)
	return err == nil && n == b.Size && d == b.SHA256
}

// copyBlob copies b from the repository, checking its signed size and
// digest: a damaged repository file must not reach the schools.
func copyBlob(src source, b fetch.Blob, w io.Writer) error {
	f, err := os.Open(filepath.Join(src.dir, filepath.FromSlash(b.Path)))
	if err != nil {
		return err
	}
	defer f.Close()
	dw := digest.NewWriter(w)
	n, err := io.Copy(dw, io.LimitReader(f, b.Size+1))
	if err != nil {
		return err
	}
	if n != b.Size || dw.Digest() != b.SHA256 {
		return fmt.Errorf("%s: %d bytes with digest %s, the index says %d bytes %s: %w", b.Path, n, dw.Digest(), b.Size, b.SHA256, errdefs.ErrCorrupt)
	}
	return nil
}

// writeFile writes path through a temp file renamed into place; with sync
// it also fsyncs the file and the directory.
func writeFile(path string, sync bool, fill func(io.Writer) error) error {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0644)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if sync {
		return atomicfile.SyncFS(filepath.Dir(path))
	}
	return nil
}
