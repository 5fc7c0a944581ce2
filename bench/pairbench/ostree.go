package main

import (
	"encoding/json"
	"log"
	"os"
	"path/filepath"
	"strings"
)

// ostreePeer is OSTree 2022.7 as deployed systems use it: the build server
// commits both trees to an archive repository and generates a static delta
// between them; the client, whose bare repository holds the old commit,
// pulls over HTTP (the delta, plus whatever loose objects it decides to
// fetch) and checks the new commit out with hard links.
type ostreePeer struct {
	work            string
	server          string // work/www/ostree, served as URL/ostree/
	client0         string // pristine client repository (old commit only)
	OldRev, NewRev  string
	PublishSeconds  float64 // commit of the new tree + static-delta generate
	DeltaBytes      int64   // the static delta on the server's disk
	RepoGrowthBytes int64   // the new commit's objects + delta
	Key             string
}

func (p *ostreePeer) cacheFile() string { return filepath.Join(p.work, "ostree.json") }

// prepare builds the server repository and the pristine client once per
// data set (key names the data).
func prepareOstree(work, oldTree, newTree, key string, tr *trash) *ostreePeer {
	p := &ostreePeer{work: work, server: filepath.Join(work, "www", "ostree"), client0: filepath.Join(work, "ostree-client0")}
	if b, err := os.ReadFile(p.cacheFile()); err == nil {
		var c ostreePeer
		if json.Unmarshal(b, &c) == nil && c.Key == key {
			c.work, c.server, c.client0 = p.work, p.server, p.client0
			log.Printf("ostree: repositories cached")
			return &c
		}
	}
	tr.put(p.server)
	tr.put(p.client0)
	repo := "--repo=" + p.server
	quiet("ostree", "init", repo, "--mode=archive")
	p.OldRev = strings.TrimSpace(quiet("ostree", "commit", repo, "-b", "main", "--tree=dir="+oldTree))
	before := duBytes(p.server)
	m := timed(nil, "ostree", "commit", repo, "-b", "main", "--tree=dir="+newTree)
	p.NewRev = strings.TrimSpace(m.Out)
	d := timed(nil, "ostree", "static-delta", "generate", repo, "--from="+p.OldRev, "--to="+p.NewRev)
	quiet("ostree", "summary", repo, "-u")
	p.PublishSeconds = m.Seconds + d.Seconds
	p.RepoGrowthBytes = duBytes(p.server) - before
	p.DeltaBytes = duBytes(filepath.Join(p.server, "deltas"))
	log.Printf("ostree: commit %.1fs, static delta %.1fs (%s MB)", m.Seconds, d.Seconds, mb(p.DeltaBytes))

	c := "--repo=" + p.client0
	quiet("ostree", "init", c, "--mode=bare")
	quiet("ostree", "pull-local", c, p.server, p.OldRev)
	quiet("ostree", "refs", c, "--create=origin:main", p.OldRev)
	quiet("chmod", "-R", "a+rX", p.server)
	p.Key = key
	b, _ := json.Marshal(p)
	check(os.WriteFile(p.cacheFile(), b, 0644))
	return p
}

// reset puts the client back at the old commit (not timed).
func (p *ostreePeer) reset(t *trash, srv *counter) {
	client := filepath.Join(p.work, "ostree-client")
	t.put(client)
	t.put(filepath.Join(p.work, "ostree-dst"))
	quiet("cp", "-a", p.client0, client)
	quiet("ostree", "remote", "add", "--repo="+client, "--force", "--no-gpg-verify", "origin", srv.URL+"ostree/")
}

// run pulls and checks out the new commit with hard links; returns (pull,
// checkout) measurements.
func (p *ostreePeer) run() (pull, co measured, dst string) {
	client := filepath.Join(p.work, "ostree-client")
	dst = filepath.Join(p.work, "ostree-dst")
	c := "--repo=" + client
	pull = timed(nil, "ostree", "pull", c, "origin", "main")
	co = timed(nil, "ostree", "checkout", c, "--require-hardlinks", p.NewRev, dst)
	return pull, co, dst
}

// duBytes is the apparent size of a tree (du -sb).
func duBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
