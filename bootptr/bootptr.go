// Package bootptr defines the boot pointer: the one small file that says which
// slot the next boot uses, with the trial state that makes boot counting work.
//
// The security service alone writes it while the system runs; the initrd reads
// it at every boot and rewrites it only to consume a trial try or to fall back.
// Both sides share this package so that the format and the rules are written
// down exactly once. The package never touches R/current: applying the pointer
// to the running tree is the initrd's job, at boot, before anything uses it.
//
// The format is line-oriented text so that a person can read it from a rescue
// shell, with a CRC so that a torn or bit-flipped file is detected and never
// half-trusted:
//
//	upgrade-bootptr 1
//	next=b
//	good=a
//	trial=1
//	tries=3
//	failed=
//	seq=7
//	crc32=1a2b3c4d
//
// Keys come in this fixed order; crc32 is the IEEE CRC-32 of every byte before
// the "crc32=" line, in 8 lowercase hex digits. Decode accepts only the exact
// bytes Encode produces, so there is one spelling of every pointer.
package bootptr

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strconv"

	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/layout"
)

// Version is the format version on the first line.
const Version = 1

// MaxTries bounds Tries so that the field stays two digits and a typo in a
// tool cannot make a slot trial forever.
const MaxTries = 99

// maxSize bounds what Read accepts; a real pointer is about 90 bytes.
const maxSize = 4096

const magic = "upgrade-bootptr"

// Pointer is the decoded boot pointer.
type Pointer struct {
	Next   layout.Slot // slot the next boot uses
	Good   layout.Slot // last slot known good (marked good after boot-complete)
	Trial  bool        // Next is on trial (boot counting)
	Tries  int         // tries left while on trial (0..99)
	Failed layout.Slot // slot the initrd abandoned after its tries ran out ("" = none); reported by the daemon
	Seq    uint64      // incremented by every write
}

// Validate reports whether p can be written: both slots named, Failed empty or
// a slot, Tries in range. Decode only ever returns valid pointers.
func (p Pointer) Validate() error {
	switch {
	case !p.Next.Valid():
		return fmt.Errorf("boot pointer: next %q is not a slot: %w", p.Next, errdefs.ErrInvalidArgument)
	case !p.Good.Valid():
		return fmt.Errorf("boot pointer: good %q is not a slot: %w", p.Good, errdefs.ErrInvalidArgument)
	case p.Failed != "" && !p.Failed.Valid():
		return fmt.Errorf("boot pointer: failed %q is not a slot: %w", p.Failed, errdefs.ErrInvalidArgument)
	case p.Tries < 0 || p.Tries > MaxTries:
		return fmt.Errorf("boot pointer: tries %d outside 0..%d: %w", p.Tries, MaxTries, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Encode returns the canonical bytes of p. It does not validate; Write does.
func (p Pointer) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d\n", magic, Version)
	fmt.Fprintf(&b, "next=%s\n", p.Next)
	fmt.Fprintf(&b, "good=%s\n", p.Good)
	fmt.Fprintf(&b, "trial=%s\n", boolDigit(p.Trial))
	fmt.Fprintf(&b, "tries=%d\n", p.Tries)
	fmt.Fprintf(&b, "failed=%s\n", p.Failed)
	fmt.Fprintf(&b, "seq=%d\n", p.Seq)
	fmt.Fprintf(&b, "crc32=%08x\n", crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// Decode parses b. Anything but the exact canonical form — a wrong version,
// a bad CRC, an unknown or misplaced key, a slot that is not a or b, a number
// with a sign or leading zero — is an error wrapping errdefs.ErrCorrupt.
func Decode(b []byte) (Pointer, error) {
	p, err := decode(b)
	if err != nil {
		return Pointer{}, err
	}
	return p, nil
}

func decode(b []byte) (Pointer, error) {
	var p Pointer
	if len(b) > maxSize {
		return p, corrupt("%d bytes, more than %d", len(b), maxSize)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return p, corrupt("missing final newline")
	}
	lines := bytes.Split(b[:len(b)-1], []byte("\n"))
	if len(lines) != 8 {
		return p, corrupt("%d lines, want 8", len(lines))
	}
	header := string(lines[0])
	if v, ok := cutPrefix(header, magic+" "); !ok {
		return p, corrupt("first line %q is not %q", clip(header), magic+" N")
	} else if v != strconv.Itoa(Version) {
		return p, corrupt("version %q, this build reads %d", clip(v), Version)
	}
	// The CRC covers everything before its own line; check it before trusting
	// any field so that a torn write is reported as such.
	crcLine := string(lines[7])
	sum, ok := cutPrefix(crcLine, "crc32=")
	if !ok {
		return p, corrupt("last line %q is not crc32=", clip(crcLine))
	}
	body := b[:len(b)-len(crcLine)-1]
	if want := fmt.Sprintf("%08x", crc32.ChecksumIEEE(body)); sum != want {
		return p, corrupt("crc32 %q, content hashes to %s", clip(sum), want)
	}
	vals := make([]string, 0, 6)
	for i, key := range []string{"next", "good", "trial", "tries", "failed", "seq"} {
		v, ok := cutPrefix(string(lines[i+1]), key+"=")
		if !ok {
			return p, corrupt("line %d %q, want %s=", i+2, clip(string(lines[i+1])), key)
		}
		vals = append(vals, v)
	}
	p.Next, p.Good = layout.Slot(vals[0]), layout.Slot(vals[1])
	p.Failed = layout.Slot(vals[4])
	switch vals[2] {
	case "0":
	case "1":
		p.Trial = true
	default:
		return p, corrupt("trial %q, want 0 or 1", clip(vals[2]))
	}
	tries, err := strconv.Atoi(vals[3])
	if err != nil {
		return p, corrupt("tries %q: not a number", clip(vals[3]))
	}
	p.Tries = tries
	if p.Seq, err = strconv.ParseUint(vals[5], 10, 64); err != nil {
		return p, corrupt("seq %q: not a number", clip(vals[5]))
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%v: %w", err, errdefs.ErrCorrupt)
	}
	// One spelling per pointer: "tries=03" or "seq=+7" passed Atoi but are
	// not what Encode writes, so the file did not come from this package.
	if !bytes.Equal(p.Encode(), b) {
		return p, corrupt("not in canonical form")
	}
	return p, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("boot pointer: "+format+": %w", append(args, errdefs.ErrCorrupt)...)
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return "", false
	}
	return s[len(prefix):], true
}

// clip keeps a hostile file from flooding the console line an error ends up
// on; callers quote the result with %q.
func clip(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return s
}
