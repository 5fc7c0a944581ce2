package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ours holds the repository, keys and provisioned root of our system for one
// pair. They are cached in the work directory and rebuilt when the
// publisher binary changes (a new publisher may make a different repository).
type ours struct {
	bin, work string
	repo      string // work/www/repo, served as URL/repo/
	root      string // provisioned at version 1
	state0    string // root/var/lib/upgrade right after provisioning
	stale     bool   // accept a cache built by another publisher
	Publish   publishStats
}

// publishStats says what publishing each version cost (one run each: the
// publisher is the slow, build-server side, and runs once per pair).
type publishStats struct {
	Seconds    [2]float64 // v1 (the initial tree), v2 (the upgrade)
	AddedBytes [2]int64   // repository growth per version
	Key        string     // the publisher binary's digest
}

func newOurs(bin, work string) *ours {
	return &ours{bin: bin, work: work, repo: filepath.Join(work, "www", "repo"),
		root: filepath.Join(work, "root"), state0: filepath.Join(work, "state0")}
}

// publisherKey digests the sources that decide what the publisher writes
// (run from the module root, as make does): the cached repository is
// rebuilt when one of them changes, and only then (publishing the Go pair
// takes minutes).
func publisherKey() string {
	h := sha256.New()
	for _, dir := range []string{"publish", "delta", "delta/deflate", "delta/elf", "repo", "manifest", "digest", "cmd/upgrade-publish"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		check(err)
		if len(files) == 0 {
			log.Fatalf("no sources in %s: run from the module root", dir)
		}
		for _, f := range files {
			// delta's client side (decode.go, frames.go) does not shape
			// what the publisher writes.
			if strings.HasSuffix(f, "_test.go") || f == "delta/decode.go" || f == "delta/frames.go" {
				continue
			}
			b, err := os.ReadFile(f)
			check(err)
			fmt.Fprintf(h, "%s %d\n", f, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// prepare publishes old and new as versions 1 and 2 and provisions a root at
// version 1 (over HTTP from srv), unless the cache is current.
func (o *ours) prepare(oldTree, newTree string, srv *counter, tr *trash) {
	key := publisherKey()
	if o.stale {
		var p publishStats
		if b, err := os.ReadFile(filepath.Join(o.work, "ours.json")); err == nil && json.Unmarshal(b, &p) == nil && p.Key != "" {
			if k, err := os.ReadFile(filepath.Join(o.state0, ".key")); err == nil && string(k) == p.Key {
				log.Printf("ours: using the cached repository and root as they are (-stale-repo)")
				o.Publish = p
				return
			}
		}
		log.Fatalf("-stale-repo: no complete cache in %s", o.work)
	}
	stamp := filepath.Join(o.work, "ours.json")
	provStamp := filepath.Join(o.state0, ".key")
	if b, err := os.ReadFile(stamp); err == nil && json.Unmarshal(b, &o.Publish) == nil && o.Publish.Key == key {
		if k, err := os.ReadFile(provStamp); err == nil && string(k) == key {
			log.Printf("ours: repository and root cached (%s)", stamp)
			return
		}
		log.Printf("ours: repository cached (%s)", stamp)
	} else {
		o.publish(oldTree, newTree, key, tr)
		b, _ := json.Marshal(o.Publish)
		check(os.WriteFile(stamp, b, 0644))
	}
	tr.put(o.root)
	tr.put(o.state0)
	log.Printf("ours: provisioning %s at version 1", o.root)
	quiet(filepath.Join(o.bin, "upgrade-publish"), "provision", "--root", o.root, "--mirror", srv.URL+"repo/",
		"--keys", filepath.Join(o.work, "trusted"), "--version", "1")
	quiet("cp", "-a", filepath.Join(o.root, "var/lib/upgrade"), o.state0)
	check(os.WriteFile(provStamp, []byte(key), 0644))
}

// publish makes a new repository with old and new as versions 1 and 2,
// timing each.
func (o *ours) publish(oldTree, newTree, key string, tr *trash) {
	for _, d := range []string{o.repo, filepath.Join(o.work, "keys"), filepath.Join(o.work, "trusted")} {
		tr.put(d)
	}
	pub := filepath.Join(o.bin, "upgrade-publish")
	keys := filepath.Join(o.work, "keys")
	quiet(pub, "keygen", "--out", keys, "--name", "bench")
	check(os.MkdirAll(filepath.Join(o.work, "trusted"), 0755))
	copyFile(filepath.Join(keys, "bench.pub"), filepath.Join(o.work, "trusted", "bench.pub"))
	added := regexp.MustCompile(`(\d+) bytes added`)
	for i, tree := range []string{oldTree, newTree} {
		log.Printf("ours: publishing %s as version %d", tree, i+1)
		m := timed(nil, pub, "add", "--best", "--repo", o.repo, "--key", filepath.Join(keys, "bench.key"), "--name", fmt.Sprint(i+1), tree)
		o.Publish.Seconds[i] = m.Seconds
		if s := added.FindStringSubmatch(m.Out); s != nil {
			o.Publish.AddedBytes[i], _ = strconv.ParseInt(s[1], 10, 64)
		}
		log.Printf("ours: version %d published in %.1fs, %d bytes added", i+1, m.Seconds, o.Publish.AddedBytes[i])
	}
	quiet("chmod", "-R", "a+rX", filepath.Join(o.work, "www"))
	o.Publish.Key = key
}

// reset puts the root back in its provisioned state (not timed).
func (o *ours) reset(t *trash) {
	t.put(filepath.Join(o.root, "b"))
	t.put(filepath.Join(o.root, "var/lib/upgrade"))
	quiet("cp", "-a", o.state0, filepath.Join(o.root, "var/lib/upgrade"))
	check(os.Mkdir(filepath.Join(o.root, "b"), 0755))
}

var fetchedRE = regexp.MustCompile(`fetched (\d+) bytes`)

// run is one whole upgrade by the real binary, as an image builder or the
// daemon runs it: check, clone, fetch, apply, verify.
func (o *ours) run(srv *counter, extraEnv []string) (measured, int64) {
	env := append(os.Environ(), extraEnv...)
	m := timed(env, filepath.Join(o.bin, "upgraded"), "--once", "--root", o.root,
		"--keys", filepath.Join(o.work, "trusted"), "--mirror", srv.URL+"repo/", "--channel", "stable")
	s := fetchedRE.FindStringSubmatch(m.Out)
	if s == nil {
		log.Fatalf("upgraded --once printed no byte count:\n%s", tail(m.Out, 2000))
	}
	n, _ := strconv.ParseInt(s[1], 10, 64)
	return m, n
}
