// Command pairbench measures one upgrade (an old tree to a new tree) with our
// system and its peers, side by side in the same run on the same data:
//
//	go run ./bench/pairbench -pair go -old OLD -new NEW -work DIR -bin BIN [-runs 5]
//
// Ours: the trees are published as versions 1 and 2 (cached until the
// publisher binary changes), a root is provisioned at version 1, and each run
// times `upgraded --once` (clone + fetch over HTTP on loopback + apply +
// verify) from that same provisioned state. Peers, from the same starting
// tree (the provisioned slot a): cp -al + rsync -z from an rsync daemon;
// ostree pull (static delta) + checkout --require-hardlinks; casync extract --seed.
// HTTP peers are served by one counting server, so bytes are body bytes on
// the wire for all of them; rsync's are its own "Total bytes received".
//
// It prints medians as `BENCH name value unit` lines and writes every run's
// numbers as JSON (-json) for bench/report. The machine is shared: medians,
// not means, and ratios measured within one run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"laptop.org/upgrade/manifest"
)

// system is one contender's runs.
type system struct {
	Name    string
	Bytes   []int64              // on the wire
	Seconds []float64            // whole update, from the same starting state
	CPU     []float64            // user+sys seconds of the updating process(es)
	RSSMiB  []float64            // peak RSS of the updating process(es)
	Meta    []metaBytes          `json:",omitempty"` // ours: index, manifest and delivery bytes
	Parts   map[string][]float64 `json:",omitempty"` // phase times (cp -al, pull, checkout)
	Note    string               `json:",omitempty"`
}

func (s *system) med() (bytes int64, secs, rss float64) {
	var b []float64
	for _, x := range s.Bytes {
		b = append(b, float64(x))
	}
	return int64(median(b)), median(s.Seconds), median(s.RSSMiB)
}

// Report is what pairbench writes for bench/report.
type Report struct {
	Pair    string
	Runs    int
	Files   int // regular files in the new tree
	Systems []*system
	Publish map[string]float64 // seconds per system to publish the new version
	Growth  map[string]int64   // repository growth for the new version
	Verify  *verifyResult      `json:",omitempty"`
	// Byte floors without a timed run: OSTree's static delta on the
	// server's disk (superblock + parts), and per-file zstd --patch-from.
	OstreeDelta int64 `json:",omitempty"`
	PatchFrom   int64 `json:",omitempty"`
}

// options are pairbench's flags.
type options struct {
	pair, oldTree, newTree, work, bin, peers, out string
	runs                                          int
	quota                                         float64
	primary, verify, stale, patchFrom             bool
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.pair, "pair", "go", "pair name, used in BENCH names")
	flag.StringVar(&o.oldTree, "old", "", "old tree")
	flag.StringVar(&o.newTree, "new", "", "new tree")
	flag.StringVar(&o.work, "work", "", "work directory (cached repositories, roots)")
	flag.StringVar(&o.bin, "bin", "bin", "directory of our binaries")
	flag.IntVar(&o.runs, "runs", 5, "runs per system")
	flag.StringVar(&o.peers, "peers", "rsync,ostree,casync", "peers to measure")
	flag.BoolVar(&o.primary, "primary", false, "also print issue 2's unsuffixed names (the Go pair)")
	flag.BoolVar(&o.verify, "verify", false, "also measure verification against sha256sum")
	flag.StringVar(&o.out, "json", "", "write all runs here")
	flag.Float64Var(&o.quota, "cpu-quota", 0, "run every contender's client side under this share of one core (cgroup cpu.max; 0.25 = a quarter core)")
	flag.BoolVar(&o.patchFrom, "patch-from", false, "also measure per-file zstd -19 --patch-from (minutes, cached)")
	flag.BoolVar(&o.stale, "stale-repo", false, "measure with the cached repository and root even if the publisher's sources changed (client-side work: saves the republish)")
	flag.Parse()
	if o.oldTree == "" || o.newTree == "" || o.work == "" || o.runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	for _, p := range []*string{&o.oldTree, &o.newTree, &o.work, &o.bin} {
		a, err := filepath.Abs(*p)
		check(err)
		*p = a
	}
	return o
}

func main() {
	opt := parseFlags()
	log.SetFlags(log.Ltime)
	log.SetPrefix("pairbench " + opt.pair + ": ")
	check(os.MkdirAll(filepath.Join(opt.work, "www"), 0755))
	quiet("chmod", "a+rx", opt.work, filepath.Join(opt.work, "www"))

	srv := serveCounting(filepath.Join(opt.work, "www"))
	defer srv.Close()
	rep := &Report{Pair: opt.pair, Runs: opt.runs, Publish: map[string]float64{}, Growth: map[string]int64{}}

	tr := newTrash(opt.work)
	o := newOurs(opt.bin, opt.work)
	o.stale = opt.stale
	o.prepare(opt.oldTree, opt.newTree, srv, tr)
	rep.Publish["ours"], rep.Growth["ours"] = o.Publish.Seconds[1], o.Publish.AddedBytes[1]
	c := preparePeers(opt, rep, tr)
	defer c.stop()
	if opt.quota > 0 {
		b, err := newBudget(opt.quota)
		check(err)
		defer b.remove()
		clientBudget = b
		log.Printf("clients capped at %.2f of a core (%s)", opt.quota, b.dir)
	}
	for i := 0; i < opt.runs; i++ {
		c.round(i, o, srv, tr)
	}
	clientBudget = nil
	checkActive(context.Background(), o)
	rep.Systems = c.systems()
	if opt.verify {
		rep.Verify = benchVerify(context.Background(), o, opt.runs)
	}
	printBench(rep, opt.primary)
	if opt.out != "" {
		b, err := json.MarshalIndent(rep, "", " ")
		check(err)
		check(os.WriteFile(opt.out, b, 0644))
	}
}

// contenders are ours and the peers measured, with their runs so far.
type contenders struct {
	oldTree string
	// rsync and casync start from a fresh copy of the old tree each round,
	// not from our slot a: rsync -a into a cp -al copy chmods and chowns the
	// shared inodes in place when only metadata changed (OLPC's failure
	// mode), and so rewrote the tree it was cloned from. (Our upgrade then
	// rightly saw slot a as drifted and fetched those files again.)
	base           string
	want           *manifest.Manifest
	ostree         *ostreePeer
	casync         *casyncPeer
	rsync          *rsyncPeer
	us, rs, os, cs *system
}

// preparePeers publishes the new tree for each peer asked for (or finds
// it cached) and starts the rsync daemon.
func preparePeers(opt options, rep *Report, tr *trash) *contenders {
	c := &contenders{
		oldTree: opt.oldTree,
		base:    filepath.Join(opt.work, "peer-base"),
		want:    scan(opt.newTree),
		us:      &system{Name: "ours"},
		rs:      &system{Name: "rsync", Parts: map[string][]float64{}, Note: "cp -al + rsync -azcH --delete"},
		os:      &system{Name: "ostree", Parts: map[string][]float64{}, Note: "pull (static delta) + checkout --require-hardlinks"},
		cs:      &system{Name: "casync", Note: "extract --seed --hardlink=yes"},
	}
	rep.Files = countFiles(c.want)
	dataKey := dataStamp(opt.oldTree, opt.newTree)
	has := func(p string) bool { return strings.Contains(","+opt.peers+",", ","+p+",") }
	if has("ostree") {
		c.ostree = prepareOstree(opt.work, opt.oldTree, opt.newTree, dataKey, tr)
		rep.Publish["ostree"], rep.Growth["ostree"] = c.ostree.PublishSeconds, c.ostree.RepoGrowthBytes
		rep.OstreeDelta = c.ostree.DeltaBytes
	}
	if has("casync") {
		c.casync = prepareCasync(opt.work, opt.newTree, dataKey, tr)
		rep.Publish["casync"], rep.Growth["casync"] = c.casync.PublishSeconds, c.casync.StoreBytes
	}
	if opt.patchFrom {
		rep.PatchFrom = patchFromBytes(opt.work, opt.oldTree, opt.newTree, dataKey)
	}
	if has("rsync") {
		c.rsync = startRsync(opt.work, opt.newTree)
	}
	return c
}

func (c *contenders) stop() {
	if c.rsync != nil {
		c.rsync.stop()
	}
}

// round runs every contender once. Every contender goes back to the
// starting state first (trash.go says why nothing is deleted), then the
// runs, interleaved, so that a burst of load from other users of the
// machine hits every contender rather than one.
func (c *contenders) round(i int, o *ours, srv *counter, tr *trash) {
	o.reset(tr)
	if c.rsync != nil || c.casync != nil {
		tr.put(c.base)
		quiet("cp", "-a", c.oldTree, c.base)
	}
	if c.rsync != nil {
		c.rsync.reset(tr)
	}
	if c.ostree != nil {
		c.ostree.reset(tr, srv)
	}
	if c.casync != nil {
		c.casync.reset(tr)
	}
	// Before every timed run, `sync` (not timed): a durable update
	// (ours syncs its filesystem; ostree fsyncs) would otherwise also
	// pay for the dirty data the resets and the previous contender
	// left, which rsync and cp never wait for.
	quiet("sync")
	srv.Reset()
	m, fetched := o.run(srv, nil)
	meta := o.classifyMeta(srv.Paths())
	served, reqs := srv.Reset()
	// Charged: every body byte served (signed index, manifest and
	// delivery list included), as for the other HTTP peers.
	c.us.Bytes, c.us.Seconds, c.us.RSSMiB = append(c.us.Bytes, served), append(c.us.Seconds, m.Seconds), append(c.us.RSSMiB, m.RSSMiB)
	c.us.CPU, c.us.Meta = append(c.us.CPU, m.CPU), append(c.us.Meta, meta)
	log.Printf("run %d: ours %.2fs (cpu %.2fs), %s MB served in %d requests (%s MB of blobs; index %d, manifest %d, delivery %d bytes), peak RSS %.1f MiB",
		i+1, m.Seconds, m.CPU, mb(served), reqs, mb(fetched), meta.Index, meta.Manifest, meta.Delivery, m.RSSMiB)
	if c.rsync != nil {
		c.roundRsync(i)
	}
	if c.ostree != nil {
		c.roundOstree(i, srv)
	}
	if c.casync != nil {
		c.roundCasync(i, srv)
	}
}

func (c *contenders) roundRsync(i int) {
	quiet("sync")
	cp, r, n, dst := c.rsync.run(c.base)
	rs := c.rs
	rs.Bytes, rs.Seconds = append(rs.Bytes, n), append(rs.Seconds, cp.Seconds+r.Seconds)
	rs.RSSMiB, rs.CPU = append(rs.RSSMiB, r.RSSMiB), append(rs.CPU, cp.CPU+r.CPU)
	rs.Parts["cp -al"] = append(rs.Parts["cp -al"], cp.Seconds)
	rs.Parts["rsync"] = append(rs.Parts["rsync"], r.Seconds)
	log.Printf("run %d: rsync %.2fs (cp -al %.2fs; cpu %.2fs), %s MB received", i+1, cp.Seconds+r.Seconds, cp.Seconds, cp.CPU+r.CPU, mb(n))
	if i == 0 {
		compare("rsync", c.want, dst)
	}
}

func (c *contenders) roundOstree(i int, srv *counter) {
	quiet("sync")
	srv.Reset()
	pull, co, dst := c.ostree.run()
	n, reqs := srv.Reset()
	s := c.os
	s.Bytes, s.Seconds = append(s.Bytes, n), append(s.Seconds, pull.Seconds+co.Seconds)
	s.RSSMiB = append(s.RSSMiB, max(pull.RSSMiB, co.RSSMiB))
	s.CPU = append(s.CPU, pull.CPU+co.CPU)
	s.Parts["pull"] = append(s.Parts["pull"], pull.Seconds)
	s.Parts["checkout"] = append(s.Parts["checkout"], co.Seconds)
	log.Printf("run %d: ostree %.2fs (pull %.2fs), %s MB in %d requests, peak RSS %.1f MiB", i+1, pull.Seconds+co.Seconds, pull.Seconds, mb(n), reqs, pull.RSSMiB)
	if i == 0 {
		compare("ostree", c.want, dst)
	}
}

func (c *contenders) roundCasync(i int, srv *counter) {
	quiet("sync")
	srv.Reset()
	m, dst := c.casync.run(srv, c.base)
	n, reqs := srv.Reset()
	cs := c.cs
	cs.Bytes, cs.Seconds, cs.RSSMiB = append(cs.Bytes, n), append(cs.Seconds, m.Seconds), append(cs.RSSMiB, m.RSSMiB)
	cs.CPU = append(cs.CPU, m.CPU)
	log.Printf("run %d: casync %.2fs, %s MB in %d requests", i+1, m.Seconds, mb(n), reqs)
	if i == 0 {
		compare("casync", c.want, dst)
	}
}

// systems lists ours, then each peer that was measured.
func (c *contenders) systems() []*system {
	out := []*system{c.us}
	for _, p := range []struct {
		s  *system
		on bool
	}{{c.rs, c.rsync != nil}, {c.os, c.ostree != nil}, {c.cs, c.casync != nil}} {
		if p.on {
			out = append(out, p.s)
		}
	}
	return out
}

// dataStamp names the data set for the peers' caches: the trees' paths and
// the time their builder finished.
func dataStamp(oldTree, newTree string) string {
	st := func(p string) string {
		fi, err := os.Stat(filepath.Join(filepath.Dir(p), ".done"))
		if err != nil {
			return "?"
		}
		return fi.ModTime().String()
	}
	return fmt.Sprint(oldTree, newTree, st(oldTree), st(newTree))
}

func printBench(rep *Report, primary bool) {
	p := rep.Pair
	line := func(name string, v float64, unit string) { fmt.Printf("BENCH %s %.4g %s\n", name, v, unit) }
	var ours *system
	var bestPeer int64
	peerT := map[string]float64{}
	cpu := map[string]float64{}
	for _, s := range rep.Systems {
		b, t, r := s.med()
		cpu[s.Name] = median(s.CPU)
		line(fmt.Sprintf("bytes_%s_%s_mb", p, s.Name), float64(b)/1e6, "MB")
		line(fmt.Sprintf("time_%s_%s_s", p, s.Name), t, "s")
		line(fmt.Sprintf("cpu_%s_%s_s", p, s.Name), cpu[s.Name], "s")
		line(fmt.Sprintf("rss_%s_%s_mib", p, s.Name), r, "MiB")
		if s.Name == "ours" {
			ours = s
			continue
		}
		peerT[s.Name] = t
		if bestPeer == 0 || b < bestPeer {
			bestPeer = b
		}
	}
	ob, ot, or := ours.med()
	if bestPeer > 0 {
		line("bytes_vs_best_peer_"+p, float64(ob)/float64(bestPeer), "x")
	}
	for name, t := range peerT {
		line(fmt.Sprintf("upgrade_time_vs_%s_%s", name, p), ot/t, "x")
		line(fmt.Sprintf("cpu_vs_%s_%s", name, p), cpu["ours"]/cpu[name], "x")
	}
	for _, f := range []struct {
		name string
		n    int64
	}{{"ostree_delta", rep.OstreeDelta}, {"patchfrom", rep.PatchFrom}} {
		if f.n > 0 {
			line(fmt.Sprintf("bytes_%s_%s_mb", p, f.name), float64(f.n)/1e6, "MB")
			line(fmt.Sprintf("bytes_vs_%s_%s", f.name, p), float64(ob)/float64(f.n), "x")
		}
	}
	printMeta(p, ours, ob)
	line("publish_seconds_"+p, rep.Publish["ours"], "s")
	line("repo_growth_mb_"+p, float64(rep.Growth["ours"])/1e6, "MB")
	if primary {
		line("upgrade_seconds", ot, "s")
		line("peak_rss_mib", or, "MiB")
		for _, s := range rep.Systems {
			if s.Name == "rsync" {
				b, t, _ := s.med()
				line("fetch_bytes_vs_rsync", float64(ob)/float64(b), "x")
				line("upgrade_ratio_vs_rsync", ot/t, "x")
			}
		}
	}
	if v := rep.Verify; v != nil {
		line("verify_mb_per_s", v.OursMBps, "MB/s")
		line("sha256sum_mb_per_s", v.ShaMBps, "MB/s")
		line("verify_vs_sha256sum", v.OursMBps/v.ShaMBps, "x")
	}
}
