package clone

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/dirwalk"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/manifest"
	"laptop.org/upgrade/slotfs"
)

// entry handles one child: name in src's directory sfd (srcWhy non-empty if
// that directory is unusable) and dst's directory dfd (-1: detect only),
// where ex is what dst already holds (nil: nothing, or not looked at).
func (c *cloner) entry(sfd, dfd int, srcWhy, name string, e *manifest.Entry, ex *unix.Stat_t, k int32, r *Result) error {
	if e.Type == manifest.File {
		return c.file(sfd, dfd, srcWhy, name, e, ex, r)
	}
	if c.dst == nil { // detect: compare src with m
		if srcWhy == "" {
			if why := c.otherDrift(sfd, name, e); why != "" {
				r.Drift = append(r.Drift, Drift{e.Path, why})
			}
		} else {
			r.Drift = append(r.Drift, Drift{e.Path, srcWhy})
		}
		if e.Type == manifest.Dir {
			c.queue(k, false)
		}
		return nil
	}
	switch e.Type {
	case manifest.Dir:
		return c.mkdir(dfd, name, e, ex, k, r)
	case manifest.Symlink:
		if ex != nil {
			if ex.Mode&unix.S_IFMT == unix.S_IFLNK && ex.Uid == e.UID && ex.Gid == e.GID {
				if t, err := dirwalk.ReadlinkAt(dfd, name); err == nil && t == e.Target {
					r.Kept++
					return nil
				}
			}
			if err := c.remove(dfd, name, ex, r); err != nil {
				return err
			}
		}
		if err := unix.Symlinkat(e.Target, dfd, name); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		if e.UID != c.euid || e.GID != c.egid { // our new inode, not shared
			if err := unix.Fchownat(dfd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("lchown: %w", err)
			}
		}
		r.Symlinks++
		return nil
	default: // device nodes and fifos
		if ex != nil {
			if ex.Mode == fmtOf(e.Type)|e.Mode && ex.Uid == e.UID && ex.Gid == e.GID && ex.Rdev == e.Rdev {
				r.Kept++
				return nil
			}
			if err := c.remove(dfd, name, ex, r); err != nil {
				return err
			}
		}
		if err := unix.Mknodat(dfd, name, fmtOf(e.Type)|e.Mode&0777, int(e.Rdev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		// The node is ours and new; mknod's mode went through the umask,
		// and chown comes first because it clears setuid bits.
		if err := unix.Fchownat(dfd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := unix.Fchmodat(dfd, name, e.Mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		ts := []unix.Timespec{slotfs.FixedMtime, slotfs.FixedMtime}
		if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("utimes: %w", err)
		}
		r.Other++
		return nil
	}
}

// file checks src's file for drift and links it into dst (or keeps dst's
// name when it already is src's inode).
func (c *cloner) file(sfd, dfd int, srcWhy, name string, e *manifest.Entry, ex *unix.Stat_t, r *Result) error {
	why := srcWhy
	var st unix.Stat_t
	if why == "" {
		var err error
		if why, err = c.fileDrift(sfd, name, e, &st); err != nil {
			return err
		}
	}
	if why != "" {
		r.Drift = append(r.Drift, Drift{e.Path, why})
		if ex != nil {
			return c.remove(dfd, name, ex, r)
		}
		return nil
	}
	if c.dst == nil {
		return nil
	}
	if ex != nil {
		if ex.Mode&unix.S_IFMT == unix.S_IFREG && ex.Ino == st.Ino && ex.Dev == st.Dev {
			r.Kept++
			return nil
		}
		if err := c.remove(dfd, name, ex, r); err != nil {
			return err
		}
	}
	if err := unix.Linkat(sfd, name, dfd, name, 0); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	r.Linked++
	return nil
}

// fileDrift is the drift check of one file of src; st receives its lstat.
func (c *cloner) fileDrift(sfd int, name string, e *manifest.Entry, st *unix.Stat_t) (string, error) {
	if err := unix.Fstatat(sfd, name, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return "missing", nil
		}
		return fmt.Sprintf("lstat: %v", err), nil
	}
	why, hash := statDrift(e, st)
	if why == "" && (hash || len(e.Xattrs) > 0) {
		var err error
		if why, err = contentDrift(c.ctx, sfd, name, st, e, hash); err != nil {
			return "", err
		}
	}
	if why == "" && e.Link != "" {
		// A group member must still share its leader's inode, or the
		// clone's group would be broken too.
		var lst unix.Stat_t
		if err := lstatRel(c.src.FD(), e.Link, &lst); err != nil || lst.Ino != st.Ino || lst.Dev != st.Dev {
			why = "not hard-linked to " + e.Link
		}
	}
	return why, nil
}

// otherDrift compares a non-file entry of src with m (detect only).
func (c *cloner) otherDrift(sfd int, name string, e *manifest.Entry) string {
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return "missing"
		}
		return fmt.Sprintf("lstat: %v", err)
	}
	if why, _ := statDrift(e, &st); why != "" {
		return why
	}
	if e.Type == manifest.Symlink {
		t, err := dirwalk.ReadlinkAt(sfd, name)
		if err != nil {
			return fmt.Sprintf("readlink: %v", err)
		}
		if t != e.Target {
			return fmt.Sprintf("target %q, manifest says %q", t, e.Target)
		}
	}
	return ""
}

// dirXattrDrift compares the tracked xattrs of src's directory fd with e.
func dirXattrDrift(fd int, e *manifest.Entry) string {
	xs, err := manifest.ReadXattrsFd(fd)
	if err != nil {
		return fmt.Sprintf("read xattrs: %v", err)
	}
	if !slices.EqualFunc(xs, e.Xattrs, func(a, b manifest.Xattr) bool { return a.Name == b.Name && string(a.Value) == string(b.Value) }) {
		return fmt.Sprintf("xattrs %s, manifest says %s", xattrNames(xs), xattrNames(e.Xattrs))
	}
	return ""
}

// mkdir makes (or keeps) directory name in dst with m's metadata and
// queues it. Directories are never shared between slots, so fixing the
// metadata of a kept one in place is safe.
func (c *cloner) mkdir(dfd int, name string, e *manifest.Entry, ex *unix.Stat_t, k int32, r *Result) error {
	fresh := ex == nil || ex.Mode&unix.S_IFMT != unix.S_IFDIR
	if fresh {
		if ex != nil {
			if err := c.remove(dfd, name, ex, r); err != nil {
				return err
			}
		}
		if err := unix.Mkdirat(dfd, name, 0700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	if !fresh && ex.Dev != c.dstDev {
		return fmt.Errorf("a mount point where the manifest has a directory: %w", errdefs.ErrUnsafePath)
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	if fresh && (e.UID != c.euid || e.GID != c.egid) || !fresh && (ex.Uid != e.UID || ex.Gid != e.GID) {
		if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if fresh || ex.Mode&07777 != e.Mode {
		if err := unix.Fchmod(fd, e.Mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	// Always: a kept dir may carry stale ones, a fresh one inherits its
	// parent's default ACL.
	if err := slotfs.SetXattrs(fd, e.Xattrs); err != nil {
		return err
	}
	if fresh {
		r.Dirs++
	} else {
		r.Kept++
	}
	c.queue(k, fresh)
	return nil
}

// remove removes dst's name (lstat ex) and counts it.
func (c *cloner) remove(dfd int, name string, ex *unix.Stat_t, r *Result) error {
	n, err := removeAt(dfd, name, ex, c.dstDev)
	r.Removed += n
	return err
}

// lstatRel lstats the slot path rel under rootFD (used for the rare
// hard-link leader check).
func lstatRel(rootFD int, rel string, st *unix.Stat_t) error {
	fd, err := dirwalk.Open(rootFD, manifest.Parent(rel), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	base := rel[len(manifest.Parent(rel)):]
	if len(base) > 0 && base[0] == '/' {
		base = base[1:]
	}
	return unix.Fstatat(fd, base, st, unix.AT_SYMLINK_NOFOLLOW)
}
