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

// A rebuilt executable comes as an ELF-aware delta to a client that knows
// the codec and as an object to one without it (the publisher stores one
// delta per pair, the smallest); both end
// with exactly version 2.
func TestELFDeltas(t *testing.T) {
	v1 := map[string][]byte{"usr/bin/prog": cProgram(t, 0)}
	v2 := map[string][]byte{"usr/bin/prog": cProgram(t, 3)}
	rp := publishVersions(t, false, v1, v2)
	url := testrepo.Serve(t, http.FileServer(http.Dir(rp.Dir)))
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		codecs []string
		want   string
	}{
		{"client with the ELF codec", nil, repo.CodecELF},
		{"client without it", []string{"", repo.CodecDeflate}, "object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
		})
	}
}
