package main

import (
	"encoding/json"
	"log"
	"os"
	"path/filepath"
)

// casyncPeer is casync 2: the build server chunks the new tree into a chunk
// store and an index; the client extracts the index over HTTP, seeding from
// the old tree (chunks it already has are not fetched; identical files are
// hard-linked from the seed with --hardlink=yes).
type casyncPeer struct {
	work           string
	dir            string // work/www/casync, served as URL/casync/
	PublishSeconds float64
	StoreBytes     int64
	Key            string
}

func prepareCasync(work, newTree, key string, tr *trash) *casyncPeer {
	p := &casyncPeer{work: work, dir: filepath.Join(work, "www", "casync")}
	cache := filepath.Join(work, "casync.json")
	if b, err := os.ReadFile(cache); err == nil {
		var c casyncPeer
		if json.Unmarshal(b, &c) == nil && c.Key == key {
			c.work, c.dir = p.work, p.dir
			log.Printf("casync: store cached")
			return &c
		}
	}
	tr.put(p.dir)
	check(os.MkdirAll(p.dir, 0755))
	m := timed(nil, "casync", "make", "--store="+filepath.Join(p.dir, "store.castr"), filepath.Join(p.dir, "new.caidx"), newTree)
	p.PublishSeconds = m.Seconds
	p.StoreBytes = duBytes(p.dir)
	quiet("chmod", "-R", "a+rX", p.dir)
	log.Printf("casync: make %.1fs (%s MB)", m.Seconds, mb(p.StoreBytes))
	p.Key = key
	b, _ := json.Marshal(p)
	check(os.WriteFile(cache, b, 0644))
	return p
}

func (p *casyncPeer) reset(t *trash) { t.put(filepath.Join(p.work, "casync-dst")) }

func (p *casyncPeer) run(srv *counter, oldTree string) (m measured, dst string) {
	dst = filepath.Join(p.work, "casync-dst")
	m = timed(nil, "casync", "extract", "--store="+srv.URL+"casync/store.castr", "--seed="+oldTree,
		"--hardlink=yes", srv.URL+"casync/new.caidx", dst)
	return m, dst
}
