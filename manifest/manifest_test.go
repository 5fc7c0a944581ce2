package manifest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
)

var h1 = digest.Of([]byte("one"))

func sample() *Manifest {
	return &Manifest{
		Header: Header{Channel: "stable", Version: 3},
		Entries: []Entry{
			{Path: "bin", Type: Dir, Mode: 0755},
			{Path: "bin/su", Type: File, Mode: 04755, Size: 3, SHA256: h1, Xattrs: []Xattr{{Name: XattrCapability, Value: []byte{1, 2}}}},
			{Path: "bin/su2", Type: File, Mode: 04755, Size: 3, SHA256: h1, Xattrs: []Xattr{{Name: XattrCapability, Value: []byte{1, 2}}}, Link: "bin/su"},
			{Path: "lib", Type: Symlink, Mode: 0777, Target: "usr/lib"},
			{Path: "usr", Type: Dir, Mode: 0755, UID: 1, GID: 2},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	got, err := Decode(m.Bytes(), DefaultPolicy)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.Entries, got.Entries); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	if !bytes.Equal(m.Bytes(), got.Bytes()) {
		t.Fatal("encoding is not deterministic")
	}
}

// encode writes a manifest without validating it, as a hostile publisher could.
func encode(es ...Entry) []byte {
	m := &Manifest{Header: Header{Channel: "stable", Version: 1}, Entries: es}
	return m.Bytes()
}

// replaceLast replaces the last old in b (an entry line, not the header).
func replaceLast(b []byte, old, new string) []byte {
	i := bytes.LastIndex(b, []byte(old))
	return append(append(append([]byte{}, b[:i]...), new...), b[i+len(old):]...)
}

func TestDecodeRejects(t *testing.T) {
	dir := Entry{Path: "d", Type: Dir, Mode: 0755}
	file := func(p string) Entry { return Entry{Path: p, Type: File, Mode: 0644, Size: 3, SHA256: h1} }
	for _, tc := range []struct {
		name string
		in   []byte
		pol  Policy
		want error
		msg  string
	}{
		{"empty", nil, DefaultPolicy, errdefs.ErrInvalidArgument, "empty"},
		{"not json", []byte("hello\n"), DefaultPolicy, errdefs.ErrInvalidArgument, "header"},
		{"wrong spec", []byte(`{"type":"manifest","spec":9,"channel":"s","version":1,"created":"2026-01-01T00:00:00Z","entries":0}` + "\n"), DefaultPolicy, errdefs.ErrInvalidArgument, "spec 9"},
		{"unknown field", []byte(`{"type":"manifest","spec":1,"channel":"s","version":1,"created":"2026-01-01T00:00:00Z","entries":0,"evil":1}` + "\n"), DefaultPolicy, errdefs.ErrInvalidArgument, "evil"},
		{"dotdot", encode(file("../etc/passwd")), DefaultPolicy, errdefs.ErrUnsafePath, ".."},
		{"inner dotdot", encode(dir, file("d/../../x")), DefaultPolicy, errdefs.ErrUnsafePath, ".."},
		{"absolute", encode(file("/etc/passwd")), DefaultPolicy, errdefs.ErrUnsafePath, "absolute"},
		{"NUL", encode(file("a\x00b")), DefaultPolicy, errdefs.ErrUnsafePath, "NUL"},
		{"overlong name", encode(file(strings.Repeat("n", 256))), DefaultPolicy, errdefs.ErrUnsafePath, "256 bytes"},
		{"empty component", encode(dir, file("d//x")), DefaultPolicy, errdefs.ErrUnsafePath, "empty component"},
		{"duplicate", encode(file("a"), file("a")), DefaultPolicy, errdefs.ErrInvalidArgument, "duplicate"},
		{"unsorted", encode(file("b"), file("a")), DefaultPolicy, errdefs.ErrInvalidArgument, "out of order"},
		{"file under symlink", encode(Entry{Path: "d", Type: Symlink, Mode: 0777, Target: "/etc"}, file("d/passwd")), DefaultPolicy, errdefs.ErrUnsafePath, "not a directory"},
		{"file under file", encode(file("d"), file("d/x")), DefaultPolicy, errdefs.ErrUnsafePath, "not a directory"},
		{"missing parent", encode(file("d/x")), DefaultPolicy, errdefs.ErrUnsafePath, "not a directory"},
		{"setuid refused", encode(Entry{Path: "su", Type: File, Mode: 04755, SHA256: h1}), Policy{}, errdefs.ErrPolicy, "setuid"},
		{"device refused", encode(Entry{Path: "sda", Type: Block, Mode: 0660, Rdev: 2048}), DefaultPolicy, errdefs.ErrPolicy, "block device"},
		{"mode bits", encode(Entry{Path: "x", Type: File, Mode: 0170000, SHA256: h1}), DefaultPolicy, errdefs.ErrInvalidArgument, "mode"},
		{"unknown type", encode(Entry{Path: "x", Type: 'z'}), DefaultPolicy, errdefs.ErrInvalidArgument, "unknown type"},
		{"untracked xattr", encode(Entry{Path: "x", Type: File, SHA256: h1, Xattrs: []Xattr{{Name: "user.evil", Value: []byte{1}}}}), DefaultPolicy, errdefs.ErrInvalidArgument, "not tracked"},
		{"link to nothing", encode(Entry{Path: "x", Type: File, SHA256: h1, Link: "a"}), DefaultPolicy, errdefs.ErrInvalidArgument, "hard link"},
		{"link with other mode", encode(file("a"), Entry{Path: "b", Type: File, Mode: 0600, Size: 3, SHA256: h1, Link: "a"}), DefaultPolicy, errdefs.ErrInvalidArgument, "hard link"},
		{"empty symlink", encode(Entry{Path: "l", Type: Symlink, Mode: 0777}), DefaultPolicy, errdefs.ErrUnsafePath, "target"},
		{"more entries than header", append(encode(file("a")), []byte(`{"p":"b","t":"f","m":420,"u":0,"g":0}`+"\n")...), DefaultPolicy, errdefs.ErrInvalidArgument, "more entries"},
		{"too many entries", encode(file("a"), file("b")), Policy{MaxEntries: 1}, errdefs.ErrTooLarge, "limit 1"},
		{"two objects on a line", replaceLast(encode(file("a"), file("b")), "}\n{", "} {"), DefaultPolicy, errdefs.ErrInvalidArgument, "line 2: not one JSON object"},
		{"an object over two lines", replaceLast(encode(file("a"), file("b")), `,"t"`, ",\n\"t\""), DefaultPolicy, errdefs.ErrInvalidArgument, "line 3:"},
		{"trailing garbage", replaceLast(encode(file("a")), "}\n", "}x\n"), DefaultPolicy, errdefs.ErrInvalidArgument, "line 2: not one JSON object"},
		{"line too long", append(encode(file("a"))[:bytes.IndexByte(encode(file("a")), '\n')+1], bytes.Repeat([]byte(" "), maxLine+1)...), DefaultPolicy, errdefs.ErrInvalidArgument, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in, tc.pol)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"a": true, "a/b/c": true, "a.b": true, "..a": true, "a..": true, ".hidden": true,
		"": false, "/a": false, "a/": false, ".": false, "..": false, "a/./b": false, "a/../b": false, "a//b": false,
	} {
		if err := CheckPath(p); (err == nil) != ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(sample().Bytes())
	f.Add(encode(Entry{Path: "d", Type: Symlink, Mode: 0777, Target: "/etc"}, Entry{Path: "d/passwd", Type: File, SHA256: h1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, Policy{AllowSetuid: true, AllowDevices: true, MaxEntries: 1000})
		if err != nil {
			return
		}
		// Whatever decodes must be safe to use and re-encode to an equal manifest.
		for _, e := range m.Entries {
			if CheckPath(e.Path) != nil {
				t.Fatalf("unsafe path accepted: %q", e.Path)
			}
		}
		m2, err := Decode(m.Bytes(), Policy{AllowSetuid: true, AllowDevices: true, MaxEntries: 1000})
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if diff := cmp.Diff(m.Entries, m2.Entries); diff != "" {
			t.Fatal(diff)
		}
	})
}
