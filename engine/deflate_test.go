package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"laptop.org/upgrade/engine"
	"laptop.org/upgrade/internal/testrepo"
	"laptop.org/upgrade/layout"
	"laptop.org/upgrade/repo"
)

// manText is a man page of n sections; seed picks its words.
func manText(seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	words := strings.Fields("the slot upgrade pointer boot delta manifest object verify signed index mirror fetch apply clone")
	var b bytes.Buffer
	for s := 0; s < n; s++ {
		fmt.Fprintf(&b, ".SH SECTION %d\n", s)
		for l := 0; l < 12; l++ {
			for w := 0; w < 9; w++ {
				b.WriteString(words[r.Intn(len(words))] + " ")
			}
			fmt.Fprintf(&b, "\\fB%d\\fR\n", r.Intn(1000))
		}
	}
	return b.Bytes()
}

// gzip9n compresses as Debian's man pages and changelogs are (GNU gzip -9n).
func gzip9n(t *testing.T, b []byte) []byte {
	t.Helper()
	cmd := exec.Command("gzip", "-9n")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -9n: %v", err)
	}
	return out
}

// A changed .gz comes as a deflate-aware delta to a client that knows the
// codec, and some other way (an object, a plain delta) to a client without
// it; both end with exactly version 2.
func TestDeflateDeltas(t *testing.T) {
	v1, v2 := map[string][]byte{}, map[string][]byte{}
	for i, name := range []string{"usr/share/man/man1/tool.1.gz", "usr/share/doc/tool/changelog.gz", "usr/share/man/man8/toold.8.gz"} {
		old := manText(int64(i), 40)
		nw := bytes.Replace(old, []byte(".SH SECTION 20\n"), []byte(".SH SECTION 20\nA new paragraph in version 2.\n"), 1)
		v1[name], v2[name] = gzip9n(t, old), gzip9n(t, nw)
	}
	rp := publishVersions(t, false, v1, v2)
	var mu sync.Mutex
	var requested []string
	fs := http.FileServer(http.Dir(rp.Dir))
	url := testrepo.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requested = append(requested, strings.TrimPrefix(r.URL.Path, "/"))
		mu.Unlock()
		fs.ServeHTTP(w, r)
	}))
	ctx := context.Background()

	fetched := map[bool]int64{}
	for _, tc := range []struct {
		name    string
		codecs  []string
		deflate bool // whether the plan uses deflate-aware deltas
	}{
		{"client with the deflate codec", nil, true},
		{"client without it", []string{""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, cfg := rp.Provision(t, url, 1)
			cfg.DeltaCodecs = tc.codecs
			_, _, target := openNewest(t, ctx, cfg)
			cur, err := engine.LoadInstalled(cfg.Root, layout.SlotA)
			if err != nil {
				t.Fatal(err)
			}
			rm, _, _ := openNewest(t, ctx, cfg)
			plan, err := rm.Plan(ctx, cur.Manifest, nil, target)
			if err != nil {
				t.Fatal(err)
			}
			puffed := 0
			for _, a := range plan.Actions {
				if a.Src == engine.Delta && a.Delta.Codec == repo.CodecDeflate {
					puffed++
				}
			}
			if want := map[bool]int{true: 3, false: 0}[tc.deflate]; puffed != want {
				t.Fatalf("%d deflate-aware deltas planned, want %d", puffed, want)
			}
			mu.Lock()
			requested = nil
			mu.Unlock()
			res, err := engine.Upgrade(ctx, cfg, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("counts keep/link/copy/delta/object = %v, fetched %d bytes", res.Counts, res.Fetched)
			checkSlotB(t, ctx, cfg, rp.Trees[1])
			mu.Lock()
			defer mu.Unlock()
			if !tc.deflate {
				for _, p := range requested {
					if strings.HasSuffix(p, "."+repo.CodecDeflate+".zst") {
						t.Errorf("fetched a deflate-aware delta: %s", p)
					}
				}
			}
			fetched[tc.deflate] = res.Fetched
		})
	}
}
