// Package manifest describes one version of an OS tree: every entry's path,
// type, mode, owner, size, content digest, symlink target, hard-link group and
// the extended attributes that matter. It is the contract between the
// publisher, the planner, the verifier and the security service.
//
// Decoding is the first line of defence against a hostile repository: Decode
// rejects anything that could make a later step write outside a slot (absolute
// paths, "..", NUL, overlong names, duplicates, an entry "under" a symlink or
// a file) before any other package sees the data.
package manifest

import (
	"bytes"
	"fmt"
	"slices"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
)

// Type is an entry's file type, one letter in the encoding.
type Type byte

const (
	File    Type = 'f'
	Dir     Type = 'd'
	Symlink Type = 'l'
	Char    Type = 'c'
	Block   Type = 'b'
	Fifo    Type = 'p'
)

func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case Char:
		return "char device"
	case Block:
		return "block device"
	case Fifo:
		return "fifo"
	}
	return fmt.Sprintf("type(%q)", byte(t))
}

// XattrCapability is tracked because file capabilities replace setuid for
// many tools, so dropping it breaks them.
const XattrCapability = "security.capability"

// The POSIX ACLs (access, and a directory's default) are tracked as OSTree
// does: an OS that ships them means them, and a slot without them grants
// other rights than the tree that was signed.
const (
	XattrACLAccess  = "system.posix_acl_access"
	XattrACLDefault = "system.posix_acl_default"
)

// TrackedXattrs are the attribute names a manifest may carry, sorted (an
// entry lists its xattrs in this order). A manifest made before the ACLs
// were tracked lists none and stays valid.
var TrackedXattrs = trackedNames[:]

var trackedNames = [...]string{XattrCapability, XattrACLAccess, XattrACLDefault}

// Entry is one path of a tree.
type Entry struct {
	Path   string        `json:"p"`
	Type   Type          `json:"t"`
	Mode   uint32        `json:"m"` // permission bits incl. setuid/setgid/sticky (07777)
	UID    uint32        `json:"u"`
	GID    uint32        `json:"g"`
	Size   int64         `json:"s,omitempty"`
	SHA256 digest.Digest `json:"h,omitzero"`
	Target string        `json:"l,omitempty"` // symlink target, never followed by us
	Rdev   uint64        `json:"r,omitempty"` // device number for Char/Block
	// Xattrs holds tracked extended attributes, name -> raw value, names sorted.
	Xattrs []Xattr `json:"x,omitempty"`
	// Link names the first entry (in manifest order) of this entry's hard-link
	// group; empty for the first or only member.
	Link string `json:"k,omitempty"`
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string `json:"n"`
	Value []byte `json:"v"`
}

// IsSetuid reports setuid or setgid bits.
func (e *Entry) IsSetuid() bool { return e.Mode&06000 != 0 }

// SameInodeMeta reports whether two entries could share one inode: same type,
// mode, owner, content and xattrs. Path and Link are not compared.
func (e *Entry) SameInodeMeta(o *Entry) bool {
	return e.Type == o.Type && e.Mode == o.Mode && e.UID == o.UID && e.GID == o.GID &&
		e.Size == o.Size && e.SHA256 == o.SHA256 && e.Target == o.Target && e.Rdev == o.Rdev &&
		xattrsEqual(e.Xattrs, o.Xattrs)
}

// SameContent reports whether two file entries hold the same bytes.
func (e *Entry) SameContent(o *Entry) bool {
	return e.Type == File && o.Type == File && e.SHA256 == o.SHA256 && e.Size == o.Size
}

func xattrsEqual(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}

// Policy is what local configuration allows a tree to contain.
type Policy struct {
	AllowSetuid  bool // setuid/setgid files (an OS needs su, passwd)
	AllowDevices bool // device nodes and fifos (a devtmpfs system needs none)
	MaxEntries   int  // refuse bigger manifests (memory bound); 0 = DefaultMaxEntries
}

// DefaultMaxEntries bounds a manifest's size in memory, so that a huge
// manifest is refused clearly instead of exhausting a small machine. Measured
// (hostile.TestHugeManifest): ~155 B per entry encoded plus ~186 B decoded,
// both held while a target is planned: 1,000,000 entries would cost ~330 MiB;
// 200,000 (a full desktop Debian, several times an XO image) about 65 MiB.
// Policy.MaxEntries may only lower it.
const DefaultMaxEntries = 200_000

// DefaultPolicy allows setuid files and refuses devices.
var DefaultPolicy = Policy{AllowSetuid: true}

// Check validates one entry's fields (not its place in the manifest).
func (e *Entry) Check(pol Policy) error {
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	if e.Mode&^07777 != 0 {
		return fmt.Errorf("%s: mode %o has bits beyond 07777: %w", e.Path, e.Mode, errdefs.ErrInvalidArgument)
	}
	switch e.Type {
	case File:
		if e.Size < 0 {
			return fmt.Errorf("%s: negative size: %w", e.Path, errdefs.ErrInvalidArgument)
		}
		if e.IsSetuid() && !pol.AllowSetuid {
			return fmt.Errorf("%s: setuid/setgid file: %w", e.Path, errdefs.ErrPolicy)
		}
	case Dir:
		if e.Size != 0 || !e.SHA256.IsZero() || e.Link != "" {
			return fmt.Errorf("%s: directory with size, digest or link: %w", e.Path, errdefs.ErrInvalidArgument)
		}
	case Symlink:
		if err := checkTarget(e.Target); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		if e.Link != "" || !e.SHA256.IsZero() {
			return fmt.Errorf("%s: symlink with digest or link: %w", e.Path, errdefs.ErrInvalidArgument)
		}
	case Char, Block, Fifo:
		if !pol.AllowDevices {
			return fmt.Errorf("%s: %s: %w", e.Path, e.Type, errdefs.ErrPolicy)
		}
	default:
		return fmt.Errorf("%s: unknown type %q: %w", e.Path, byte(e.Type), errdefs.ErrInvalidArgument)
	}
	if e.Type != Symlink && e.Target != "" {
		return fmt.Errorf("%s: target on a %s: %w", e.Path, e.Type, errdefs.ErrInvalidArgument)
	}
	if e.Type != File && e.Type != Dir && len(e.Xattrs) > 0 {
		return fmt.Errorf("%s: xattrs on a %s: %w", e.Path, e.Type, errdefs.ErrInvalidArgument)
	}
	for i, x := range e.Xattrs {
		if !slices.Contains(TrackedXattrs, x.Name) {
			return fmt.Errorf("%s: xattr %q is not tracked: %w", e.Path, x.Name, errdefs.ErrInvalidArgument)
		}
		if len(x.Value) > 4096 {
			return fmt.Errorf("%s: xattr %q too long: %w", e.Path, x.Name, errdefs.ErrTooLarge)
		}
		if i > 0 && e.Xattrs[i-1].Name >= x.Name {
			return fmt.Errorf("%s: xattrs not sorted or duplicated: %w", e.Path, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
