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
)

// system is one contender's runs.
type system struct {
	Name    string
	Bytes   []int64              // on the wire
	Seconds []float64            // whole update, from the same starting state
	RSSMiB  []float64            // peak RSS of the updating process(es)
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

func main() {
	pair := flag.String("pair", "go", "pair name, used in BENCH names")
	oldTree := flag.String("old", "", "old tree")
	newTree := flag.String("new", "", "new tree")
	work := flag.String("work", "", "work directory (cached repositories, roots)")
	bin := flag.String("bin", "bin", "directory of our binaries")
	runs := flag.Int("runs", 5, "runs per system")
	peers := flag.String("peers", "rsync,ostree,casync", "peers to measure")
	primary := flag.Bool("primary", false, "also print issue 2's unsuffixed names (the Go pair)")
	doVerify := flag.Bool("verify", false, "also measure verification against sha256sum")
	out := flag.String("json", "", "write all runs here")
	patchFrom := flag.Bool("patch-from", false, "also measure per-file zstd -19 --patch-from (minutes, cached)")
	stale := flag.Bool("stale-repo", false, "measure with the cached repository and root even if the publisher's sources changed (client-side work: saves the republish)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("pairbench " + *pair + ": ")
	if *oldTree == "" || *newTree == "" || *work == "" || *runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	for _, p := range []*string{oldTree, newTree, work, bin} {
		a, err := filepath.Abs(*p)
		check(err)
		*p = a
	}
	check(os.MkdirAll(filepath.Join(*work, "www"), 0755))
	quiet("chmod", "a+rx", *work, filepath.Join(*work, "www"))
	dataKey := dataStamp(*oldTree, *newTree)

	srv := serveCounting(filepath.Join(*work, "www"))
	defer srv.Close()
	rep := &Report{Pair: *pair, Runs: *runs, Publish: map[string]float64{}, Growth: map[string]int64{}}

	tr := newTrash(*work)
	o := newOurs(*bin, *work)
	o.stale = *stale
	o.prepare(*oldTree, *newTree, srv, tr)
	rep.Publish["ours"], rep.Growth["ours"] = o.Publish.Seconds[1], o.Publish.AddedBytes[1]
	// rsync and casync start from a fresh copy of the old tree each round,
	// not from our slot a: rsync -a into a cp -al copy chmods and chowns the
	// shared inodes in place when only metadata changed (OLPC's failure
	// mode), and so rewrote the tree it was cloned from. (Our upgrade then
	// rightly saw slot a as drifted and fetched those files again.)
	base := filepath.Join(*work, "peer-base")
	want := scan(*newTree)
	rep.Files = countFiles(want)

	var ostreeP *ostreePeer
	var casyncP *casyncPeer
	var rsyncP *rsyncPeer
	has := func(p string) bool { return strings.Contains(","+*peers+",", ","+p+",") }
	if has("ostree") {
		ostreeP = prepareOstree(*work, *oldTree, *newTree, dataKey, tr)
		rep.Publish["ostree"], rep.Growth["ostree"] = ostreeP.PublishSeconds, ostreeP.RepoGrowthBytes
		rep.OstreeDelta = ostreeP.DeltaBytes
	}
	if has("casync") {
		casyncP = prepareCasync(*work, *newTree, dataKey, tr)
		rep.Publish["casync"], rep.Growth["casync"] = casyncP.PublishSeconds, casyncP.StoreBytes
	}
	if *patchFrom {
		rep.PatchFrom = patchFromBytes(*work, *oldTree, *newTree, dataKey)
	}
	if has("rsync") {
		rsyncP = startRsync(*work, *newTree)
		defer rsyncP.stop()
	}

	us := &system{Name: "ours"}
	rs := &system{Name: "rsync", Parts: map[string][]float64{}, Note: "cp -al + rsync -azcH --delete"}
	os_ := &system{Name: "ostree", Parts: map[string][]float64{}, Note: "pull (static delta) + checkout --require-hardlinks"}
	cs := &system{Name: "casync", Note: "extract --seed --hardlink=yes"}
	for i := 0; i < *runs; i++ {
		// Every contender back to the starting state first (trash.go says
		// why nothing is deleted), then the runs, interleaved, so that a
		// burst of load from other users of the machine hits every
		// contender rather than one.
		o.reset(tr)
		if rsyncP != nil || casyncP != nil {
			tr.put(base)
			quiet("cp", "-a", *oldTree, base)
		}
		if rsyncP != nil {
			rsyncP.reset(tr)
		}
		if ostreeP != nil {
			ostreeP.reset(tr, srv)
		}
		if casyncP != nil {
			casyncP.reset(tr)
		}
		// Before every timed run, `sync` (not timed): a durable update
		// (ours syncs its filesystem; ostree fsyncs) would otherwise also
		// pay for the dirty data the resets and the previous contender
		// left, which rsync and cp never wait for.
		quiet("sync")
		srv.Reset()
		m, fetched := o.run(srv, nil)
		served, reqs := srv.Reset()
		// Charged: every body byte served (signed index, manifest and
		// delivery list included), as for the other HTTP peers.
		us.Bytes, us.Seconds, us.RSSMiB = append(us.Bytes, served), append(us.Seconds, m.Seconds), append(us.RSSMiB, m.RSSMiB)
		log.Printf("run %d: ours %.2fs, %s MB served in %d requests (%s MB of blobs), peak RSS %.1f MiB", i+1, m.Seconds, mb(served), reqs, mb(fetched), m.RSSMiB)
		if rsyncP != nil {
			quiet("sync")
			cp, r, n, dst := rsyncP.run(base)
			rs.Bytes, rs.Seconds = append(rs.Bytes, n), append(rs.Seconds, cp.Seconds+r.Seconds)
			rs.RSSMiB = append(rs.RSSMiB, r.RSSMiB)
			rs.Parts["cp -al"] = append(rs.Parts["cp -al"], cp.Seconds)
			rs.Parts["rsync"] = append(rs.Parts["rsync"], r.Seconds)
			log.Printf("run %d: rsync %.2fs (cp -al %.2fs), %s MB received", i+1, cp.Seconds+r.Seconds, cp.Seconds, mb(n))
			if i == 0 {
				compare("rsync", want, dst)
			}
		}
		if ostreeP != nil {
			quiet("sync")
			srv.Reset()
			pull, co, dst := ostreeP.run()
			n, reqs := srv.Reset()
			os_.Bytes, os_.Seconds = append(os_.Bytes, n), append(os_.Seconds, pull.Seconds+co.Seconds)
			os_.RSSMiB = append(os_.RSSMiB, max(pull.RSSMiB, co.RSSMiB))
			os_.Parts["pull"] = append(os_.Parts["pull"], pull.Seconds)
			os_.Parts["checkout"] = append(os_.Parts["checkout"], co.Seconds)
			log.Printf("run %d: ostree %.2fs (pull %.2fs), %s MB in %d requests, peak RSS %.1f MiB", i+1, pull.Seconds+co.Seconds, pull.Seconds, mb(n), reqs, pull.RSSMiB)
			if i == 0 {
				compare("ostree", want, dst)
			}
		}
		if casyncP != nil {
			quiet("sync")
			srv.Reset()
			m, dst := casyncP.run(srv, base)
			n, reqs := srv.Reset()
			cs.Bytes, cs.Seconds, cs.RSSMiB = append(cs.Bytes, n), append(cs.Seconds, m.Seconds), append(cs.RSSMiB, m.RSSMiB)
			log.Printf("run %d: casync %.2fs, %s MB in %d requests", i+1, m.Seconds, mb(n), reqs)
			if i == 0 {
				compare("casync", want, dst)
			}
		}
	}
	checkActive(context.Background(), o)
	rep.Systems = append(rep.Systems, us)
	for _, p := range []struct {
		s  *system
		on bool
	}{{rs, rsyncP != nil}, {os_, ostreeP != nil}, {cs, casyncP != nil}} {
		if p.on {
			rep.Systems = append(rep.Systems, p.s)
		}
	}
	if *doVerify {
		rep.Verify = benchVerify(context.Background(), o, *runs)
	}
	printBench(rep, *primary)
	if *out != "" {
		b, err := json.MarshalIndent(rep, "", " ")
		check(err)
		check(os.WriteFile(*out, b, 0644))
	}
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
	for _, s := range rep.Systems {
		b, t, r := s.med()
		line(fmt.Sprintf("bytes_%s_%s_mb", p, s.Name), float64(b)/1e6, "MB")
		line(fmt.Sprintf("time_%s_%s_s", p, s.Name), t, "s")
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
