package publish

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"laptop.org/upgrade/atomicfile"
	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/repo"
)

// store writes immutable, world-readable files into a repository directory
// (a web server's workers read them as nobody).
type store struct {
	dir string
	// zstd, when set, is the zstd command: objects of at least
	// cliMinObject bytes are compressed by it (Options.Best).
	zstd string
}

// cliMinObject: smaller objects gain little from the zstd command (and
// most of them go into packs).
const cliMinObject = 1 << 20

func (s store) path(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

// stat returns the size and digest of an existing stored file.
func (s store) stat(rel string) (digest.Digest, int64, bool, error) {
	f, err := os.Open(s.path(rel))
	if errors.Is(err, os.ErrNotExist) {
		return digest.Zero, 0, false, nil
	}
	if err != nil {
		return digest.Zero, 0, false, err
	}
	defer f.Close()
	d, n, err := digest.FromReader(f)
	return d, n, err == nil, err
}

// put stores what fill writes at rel, atomically, unless rel exists.
func (s store) put(rel string, fill func(io.Writer) error) (digest.Digest, int64, error) {
	if d, n, ok, err := s.stat(rel); err != nil || ok {
		return d, n, err
	}
	p := s.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
		return digest.Zero, 0, err
	}
	if err := atomicfile.WriteFrom(p, fill, 0644); err != nil {
		return digest.Zero, 0, err
	}
	d, n, _, err := s.stat(rel)
	return d, n, err
}

// putObject compresses content read from open() as the object for content
// digest d, returning its BlobRef.
func (s store) putObject(d digest.Digest, size int64, open func() (io.ReadCloser, error)) (repo.BlobRef, error) {
	sd, sn, err := s.put(repo.ObjectPath(d), func(w io.Writer) error {
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		if s.zstd != "" && size >= cliMinObject {
			return compressCLI(s.zstd, r, size, w)
		}
		return delta.CompressSize(r, size, w)
	})
	if err != nil {
		return repo.BlobRef{}, fmt.Errorf("object %s: %w", d, err)
	}
	return repo.BlobRef{SHA256: d, Size: size, Stored: sd, StoredSize: sn}, nil
}

// putBytes stores a small document (manifest, delivery list) as an object.
func (s store) putBytes(b []byte) (repo.BlobRef, error) {
	return s.putObject(digest.Of(b), int64(len(b)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

// readObject returns the content of a stored object, checked against d.
func (s store) readObject(d digest.Digest, max int64) ([]byte, error) {
	f, err := os.Open(s.path(repo.ObjectPath(d)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := delta.Decompress(f, &b, max); err != nil {
		return nil, fmt.Errorf("object %s: %w", d, err)
	}
	if digest.Of(b.Bytes()) != d {
		return nil, fmt.Errorf("object %s: content does not match its name", d)
	}
	return b.Bytes(), nil
}

// compressCLI is delta.CompressSize by the zstd command: level 19, the same
// 8 MiB window limit, the size recorded in the frame.
func compressCLI(zstd string, r io.Reader, size int64, w io.Writer) error {
	cmd := exec.Command(zstd, "-q", "-c", fmt.Sprintf("-%d", delta.CLILevel), "--zstd=wlog=23", fmt.Sprintf("--stream-size=%d", size), "-")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("zstd: %v: %s", err, stderr.String())
	}
	return nil
}
