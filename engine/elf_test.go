package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// cProgram compiles a C program whose first function has grow extra
// statements: the code after it moves, as in a rebuilt library whose
// early function changed, while its data stays where it was.
func cProgram(t *testing.T, grow int) []byte {
	t.Helper()
	var src strings.Builder
	src.WriteString("#include <stdio.h>\nvolatile int sink;\n__attribute__((noinline)) void first(void) {\n")
	for i := 0; i < 10+grow; i++ {
		fmt.Fprintf(&src, "\tsink += %d;\n", i)
	}
	src.WriteString("}\n")
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&src, "static const char msg%d[] = \"message number %d of the program\";\n", i, i)
		fmt.Fprintf(&src, "__attribute__((noinline)) void f%d(int x) { if (x > %d) puts(msg%d); sink += x; }\n", i, i, i)
	}
	src.WriteString("int main(int argc, char **argv) {\n\tfirst();\n")
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&src, "\tf%d(argc);\n", i)
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.c"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("gcc", "-O1", "-o", filepath.Join(dir, "p"), filepath.Join(dir, "p.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc (scripts/deps.d/delta.txt): %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "p"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goLibs are two versions of a library of a Go program: the second one
// links more of package strings, so most of the program's code moves, and
// with it the references from code that did not move and from the data.
var goLibs = [2]string{`package lib

import "strings"

func Count(a []string) (n int) {
	for _, s := range a {
		n += strings.Count(s, "/") + 1
	}
	return n
}
`, `package lib

import "strings"

func Count(a []string) (n int) {
	for i, s := range a {
		if strings.HasPrefix(s, "-") {
			n += i * 3
			continue
		}
		n += strings.Count(s, "/") + len(strings.Fields(s)) + 1
	}
	return n
}
`}

// goProgram builds a stripped Go program (as distributions ship them)
// with the given version of its library.
func goProgram(t *testing.T, version int) []byte {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":     "module pair\n\ngo 1.22\n",
		"lib/lib.go": goLibs[version],
		"main.go": "package main\n\nimport (\n\t\"encoding/json\"\n\t\"fmt\"\n\t\"net/url\"\n\t\"os\"\n\n\t\"pair/lib\"\n)\n\n" +
			"func main() {\n\tu, _ := url.Parse(os.Args[0])\n" +
			"\tb, _ := json.Marshal(map[string]any{\"u\": u.String(), \"n\": lib.Count(os.Args)})\n\tfmt.Println(string(b))\n}\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", "prog", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A rebuilt executable comes as the smallest ELF-aware delta to a client
// that knows the codecs (the encoded-file delta for the C program, the
// map delta for the Go one) and as an object to one without the kept codec, such as
// a client from before the map codec (the publisher stores one delta per
// pair, the smallest); all end with exactly version 2.
//
// With --best the publisher makes the plain delta and the most promising
// codec's with the zstd command (when installed): the codec's delta made
// so must apply as the Go encoder's does.
func TestELFDeltas(t *testing.T) {
	noMap := []string{"", repo.CodecDeflate, repo.CodecELF}
	goV1, goV2 := goProgram(t, 0), goProgram(t, 1)
	for _, pair := range []struct {
		name   string
		best   bool
		v1, v2 []byte
		cases  []elfCase
	}{
		{"C", false, cProgram(t, 0), cProgram(t, 3), []elfCase{
			{"client with the ELF codecs", nil, repo.CodecELF},
			{"client without the map codec", noMap, repo.CodecELF},
			{"client without ELF codecs", []string{"", repo.CodecDeflate}, "object"},
		}},
		{"Go", false, goV1, goV2, []elfCase{
			{"client with the ELF codecs", nil, repo.CodecELFMap},
			{"client without the map codec", noMap, "object"},
		}},
		{"Go, --best", true, goV1, goV2, []elfCase{
			{"client with the ELF codecs", nil, repo.CodecELFMap},
		}},
	} {
		t.Run(pair.name, func(t *testing.T) {
			v1 := map[string][]byte{"usr/bin/prog": pair.v1}
			v2 := map[string][]byte{"usr/bin/prog": pair.v2}
			rp := publishVersions(t, pair.best, v1, v2)
			url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
			for _, tc := range pair.cases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, rp, url) })
			}
		})
	}
}

// elfCase is a client with codecs upgrading usr/bin/prog, which it should
// plan to fetch as want (a codec's delta or "object").
type elfCase struct {
	name   string
	codecs []string
	want   string
}

func (tc elfCase) run(t *testing.T, rp *testrepo.Repo, url string) {
	ctx := context.Background()
	_, cfg := rp.Provision(t, url, 1)
	cfg.DeltaCodecs = tc.codecs
	rm, _, target := openNewest(t, ctx, cfg)
	plan := planFromA(t, ctx, cfg, rm, target)
	for _, a := range plan.Actions {
		if a.Entry.Path != "usr/bin/prog" {
			continue
		}
		codec := "object"
		if a.Src == engine.Delta {
			codec = a.Delta.Codec
		}
		if codec != tc.want {
			t.Fatalf("planned %q, want %q", codec, tc.want)
		}
	}
	if _, err := engine.Upgrade(ctx, cfg, engine.Options{}); err != nil {
		t.Fatal(err)
	}
	checkSlotB(t, ctx, cfg, rp.Trees[1])
	// The ELF codecs transform their base, slot a's file (whose inode slot
	// b's clone shared), in a private mapping: slot a is still version 1.
	checkSlot(t, ctx, cfg, layout.SlotA, rp.Trees[0])
}
