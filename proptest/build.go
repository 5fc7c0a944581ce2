package proptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Build writes t under dir (which must not exist). Directories get their
// modes last, so that a read-only one can still be filled.
func (t Tree) Build(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	first := map[*Inode]string{}
	var acls []string
	for _, p := range t.Paths() {
		in, full := t[p], filepath.Join(dir, p)
		if q, ok := first[in]; ok {
			if err := os.Link(filepath.Join(dir, q), full); err != nil {
				return err
			}
			continue
		}
		first[in] = p
		if err := in.create(full); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if in.ACL {
			acls = append(acls, full)
		}
	}
	for _, p := range t.Paths() {
		if in := t[p]; in.Kind == 'd' && first[in] == p {
			if err := unix.Chmod(filepath.Join(dir, p), in.Mode); err != nil {
				return err
			}
		}
	}
	// ACLs last: chmod rewrites an access ACL's mask.
	for _, p := range acls {
		args := []string{"-m", "u:4242:r,g:4243:rw"}
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			args = append(args, "-d", "-m", "u:4244:rx")
		}
		if out, err := exec.Command("setfacl", append(args, p)...).CombinedOutput(); err != nil {
			return fmt.Errorf("setfacl %s: %v: %s", p, err, out)
		}
	}
	return nil
}

// create makes in at full with its owner, mode and xattrs (not a
// directory's mode: see Build).
func (in *Inode) create(full string) error {
	switch in.Kind {
	case 'd':
		if err := os.Mkdir(full, 0o700); err != nil {
			return err
		}
	case 'l':
		if err := os.Symlink(in.Target, full); err != nil {
			return err
		}
		return unix.Lchown(full, in.UID, in.GID)
	case 'p':
		if err := unix.Mkfifo(full, 0o600); err != nil {
			return err
		}
	case 'c':
		if err := unix.Mknod(full, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			return err
		}
	case 'f':
		if err := os.WriteFile(full, in.Data, 0o600); err != nil {
			return err
		}
	}
	// Owner before mode (chown clears setuid), mode before the capability
	// (chown clears that too).
	if err := unix.Lchown(full, in.UID, in.GID); err != nil {
		return err
	}
	if in.Kind != 'd' {
		if err := unix.Chmod(full, in.Mode); err != nil {
			return err
		}
	}
	if in.Cap != nil {
		if err := unix.Setxattr(full, "security.capability", in.Cap, 0); err != nil {
			return err
		}
	}
	return nil
}
