// Package proptest generates random pairs of OS trees for the end-to-end
// property test (publish → upgrade → verify): every entry type, hard-link
// groups formed and broken, types swapped, modes, owners, xattrs, renames,
// empty directories and deep paths. A pair is a pure function of its seed,
// so a failing seed is the whole reproduction.
package proptest

import (
	"fmt"
	"math/rand"
	"path"
	"sort"
	"strings"

	"laptop.org/upgrade/internal/testtree"
)

// Inode is one file-system object; hard links are paths sharing an *Inode.
type Inode struct {
	Kind   byte // 'f' file, 'd' dir, 'l' symlink, 'p' fifo, 'c' char device
	Mode   uint32
	UID    int
	GID    int
	Data   []byte
	Target string
	Cap    []byte // security.capability (files only)
	ACL    bool   // a POSIX access ACL (and a default one on directories)
}

// Tree maps slash paths (relative, no leading slash) to inodes.
type Tree map[string]*Inode

var (
	names     = []string{"a", "b", "c", "lib", "bin", "share", "x.so", "conf", "ü", "sp ace"}
	fileModes = []uint32{0o644, 0o755, 0o600, 0o444, 0o4755, 0o2755, 0o700, 0}
	dirModes  = []uint32{0o755, 0o700, 0o555, 0o1777}
	owners    = []int{0, 1, 1000, 65534}
	caps      = [][]byte{testtree.CapNetRaw, testtree.CapNetBindService}
)

type gen struct {
	r    *rand.Rand
	pool [][]byte // contents, shared across files (so links and copies happen)
	acls bool
}

// NewChain returns n versions for seed, each made from the one before by
// a few random changes: n-1 pairs. With acls, some inodes carry POSIX ACLs.
func NewChain(seed uint64, n int, acls bool) []Tree {
	g := &gen{r: rand.New(rand.NewSource(int64(seed))), acls: acls}
	for i := 0; i < 6; i++ {
		g.pool = append(g.pool, testtree.Blob(g.r.Intn(6000), g.r.Int63()))
	}
	t := Tree{}
	for k := 4 + g.r.Intn(16); k > 0; k-- {
		g.add(t)
	}
	out := []Tree{t}
	for v := 2; v <= n; v++ {
		t = t.clone()
		for k := 1 + g.r.Intn(8); k > 0; k-- {
			g.mutate(t)
		}
		// One new file, so that a version never equals the one before.
		t[g.freePath(t)] = &Inode{Kind: 'f', Mode: 0o644, Data: []byte(fmt.Sprintf("stamp %d %d\n", seed, v))}
		out = append(out, t)
	}
	return out
}

// clone copies t, keeping which paths share an inode.
func (t Tree) clone() Tree {
	out, seen := Tree{}, map[*Inode]*Inode{}
	for p, in := range t {
		c, ok := seen[in]
		if !ok {
			cp := *in
			c = &cp
			seen[in] = c
		}
		out[p] = c
	}
	return out
}

// Paths returns t's paths sorted, parents before children.
func (t Tree) Paths() []string {
	ps := make([]string, 0, len(t))
	for p := range t {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func (g *gen) pick(ps []string) string { return ps[g.r.Intn(len(ps))] }

func (g *gen) dirs(t Tree) []string {
	ds := []string{""}
	for p, in := range t {
		if in.Kind == 'd' {
			ds = append(ds, p)
		}
	}
	sort.Strings(ds)
	return ds
}

func (g *gen) ofKind(t Tree, kinds string) []string {
	var ps []string
	for p, in := range t {
		if strings.IndexByte(kinds, in.Kind) >= 0 {
			ps = append(ps, p)
		}
	}
	sort.Strings(ps)
	return ps
}

// freePath returns a path not in t under one of t's directories.
func (g *gen) freePath(t Tree) string {
	ds := g.dirs(t)
	for {
		p := path.Join(g.pick(ds), g.pick(names))
		if g.r.Intn(4) == 0 {
			p += fmt.Sprint(g.r.Intn(100))
		}
		if _, ok := t[p]; !ok {
			return p
		}
	}
}

func (g *gen) meta(in *Inode) {
	in.UID, in.GID = owners[g.r.Intn(len(owners))], owners[g.r.Intn(len(owners))]
	switch in.Kind {
	case 'f':
		in.Mode = fileModes[g.r.Intn(len(fileModes))]
		in.Cap = nil
		if g.r.Intn(5) == 0 {
			in.Cap = caps[g.r.Intn(len(caps))]
		}
	case 'd':
		in.Mode = dirModes[g.r.Intn(len(dirModes))]
	case 'p', 'c':
		in.Mode = 0o600 | uint32(g.r.Intn(2))*0o066
	}
	in.ACL = g.acls && (in.Kind == 'f' || in.Kind == 'd') && g.r.Intn(6) == 0
}

func (g *gen) content() []byte {
	b := g.pool[g.r.Intn(len(g.pool))]
	if g.r.Intn(3) == 0 && len(b) > 100 {
		b = append(append([]byte(nil), b[:len(b)/2]...), fmt.Sprintf("edit %d", g.r.Int())...)
	}
	return b
}

// newInode makes an inode of a random kind (never a directory's children).
func (g *gen) newInode() *Inode {
	in := &Inode{}
	switch k := g.r.Intn(20); {
	case k < 10:
		in.Kind, in.Data = 'f', g.content()
	case k < 15:
		in.Kind = 'd'
	case k < 18:
		in.Kind = 'l'
		in.Target = g.pick([]string{"a", "../lib", "/usr/bin/x", "dangling/../../x", "b/c"})
	case k < 19:
		in.Kind = 'p'
	default:
		in.Kind = 'c'
	}
	g.meta(in)
	return in
}

// add puts one new thing into t: an entry, a hard link to a file, or a
// deep chain of directories.
func (g *gen) add(t Tree) {
	switch k := g.r.Intn(12); {
	case k == 0:
		if fs := g.ofKind(t, "f"); len(fs) > 0 {
			t[g.freePath(t)] = t[g.pick(fs)]
			return
		}
	case k == 1:
		p := g.freePath(t)
		for d := 10 + g.r.Intn(20); d > 0; d-- {
			t[p] = &Inode{Kind: 'd', Mode: 0o755}
			p = path.Join(p, fmt.Sprintf("d%d", d))
		}
		t[p] = &Inode{Kind: 'f', Mode: 0o644, Data: g.content()}
		return
	}
	t[g.freePath(t)] = g.newInode()
}

// remove deletes p and everything under it.
func remove(t Tree, p string) {
	for q := range t {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(t, q)
		}
	}
}

// mutate changes t in one random way.
func (g *gen) mutate(t Tree) {
	all := t.Paths()
	if len(all) == 0 {
		g.add(t)
		return
	}
	p := g.pick(all)
	in := t[p]
	switch g.r.Intn(10) {
	case 0: // new content (every link of the inode sees it)
		if in.Kind == 'f' {
			in.Data = g.content()
		}
	case 1: // mode, owner, xattrs, ACLs
		g.meta(in)
	case 2:
		remove(t, p)
	case 3: // rename (a directory with its subtree)
		to := g.freePath(t)
		if to == p || strings.HasPrefix(to, p+"/") {
			return
		}
		for _, q := range all {
			if q == p || strings.HasPrefix(q, p+"/") {
				t[to+strings.TrimPrefix(q, p)] = t[q]
				delete(t, q)
			}
		}
	case 4: // break a hard link: a separate inode, same content and metadata
		cp := *in
		t[p] = &cp
	case 5: // form a hard link between two files
		if fs := g.ofKind(t, "f"); len(fs) > 1 {
			t[g.pick(fs)] = t[g.pick(fs)]
		}
	case 6: // swap the type
		remove(t, p)
		n := g.newInode()
		for n.Kind == in.Kind {
			n = g.newInode()
		}
		t[p] = n
	case 7: // an empty directory
		t[g.freePath(t)] = &Inode{Kind: 'd', Mode: dirModes[g.r.Intn(len(dirModes))]}
	default:
		g.add(t)
	}
}
