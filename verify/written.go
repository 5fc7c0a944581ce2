package verify

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"laptop.org/upgrade/digest"
)

// fsIocGetversion is FS_IOC_GETVERSION, _IOR('v', 1, long) in the generic
// ioctl encoding (x86, arm, riscv); x/sys does not name it.
const fsIocGetversion = 0x80007601 | uint(unsafe.Sizeof(uintptr(0)))<<16

// Generation returns the generation number of the open file fd's inode
// (FS_IOC_GETVERSION; ext4, btrfs and xfs keep one). An inode number is
// reused once its file is deleted; the generation of the new incarnation
// differs, so device, inode number and generation name one file. ok is
// false where the filesystem keeps none.
func Generation(fd int) (gen uint32, ok bool) {
	g, err := unix.IoctlGetUint32(fd, fsIocGetversion)
	return g, err == nil
}

// Inode names one incarnation of a file: see Generation.
type Inode struct {
	Dev, Ino uint64
	Gen      uint32
}

// written reports whether Options.Written vouches for the file open as fd
// (st its fstat) having the digest want.
func (v *verifier) written(fd int, st *unix.Stat_t, want digest.Digest) bool {
	if v.o.Written == nil {
		return false
	}
	gen, ok := Generation(fd)
	if !ok {
		return false
	}
	d, ok := v.o.Written(Inode{Dev: st.Dev, Ino: st.Ino, Gen: gen})
	return ok && d == want
}
