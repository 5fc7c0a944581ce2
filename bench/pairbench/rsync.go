package main

import (
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// rsyncPeer is `cp -al` of the running tree followed by `rsync -az` from an
// rsync daemon on 127.0.0.1 into that copy: the classic way to update a
// hard-linked clone. rsync writes each changed file to a temp file and
// renames it, so the hard-linked original is never modified.
//
// -c (compare checksums) is needed for a correct result: deployed trees
// have every mtime set to 1 s, so rsync's size+mtime quick check would skip
// changed files of unchanged size. -H keeps hard links, --delete removes
// what the new tree lacks (both are part of an equivalent upgrade).
type rsyncPeer struct {
	work, newTree string
	port          int
	stop          func()
}

func startRsync(work, newTree string) *rsyncPeer {
	p := &rsyncPeer{work: work, newTree: newTree, port: freePort()}
	conf := filepath.Join(work, "rsyncd.conf")
	check(os.WriteFile(conf, fmt.Appendf(nil, `port = %d
address = 127.0.0.1
use chroot = no
pid file = %s
[new]
	path = %s
	read only = yes
	uid = 0
	gid = 0
`, p.port, filepath.Join(work, "rsyncd.pid"), newTree), 0644))
	os.Remove(filepath.Join(work, "rsyncd.pid"))
	p.stop = background(filepath.Join(work, "rsyncd.log"), "rsync", "--daemon", "--no-detach", "--config="+conf)
	waitPort(p.port)
	return p
}

func freePort() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(port int) {
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("nothing listens on 127.0.0.1:%d", port)
}

var rsyncRecvRE = regexp.MustCompile(`Total bytes received: ([\d,]+)`)

// run clones oldTree with cp -al and updates the clone with rsync; returns
// (cp, rsync) measurements and the bytes rsync received.
func (p *rsyncPeer) reset(t *trash) { t.put(filepath.Join(p.work, "rsync-dst")) }

func (p *rsyncPeer) run(oldTree string) (cp, rs measured, received int64, dst string) {
	dst = filepath.Join(p.work, "rsync-dst")
	cp = timed(nil, "cp", "-al", oldTree, dst)
	rs = timed(nil, "rsync", "-azcH", "--delete", "--stats", fmt.Sprintf("rsync://127.0.0.1:%d/new/", p.port), dst+"/")
	s := rsyncRecvRE.FindStringSubmatch(rs.Out)
	if s == nil {
		log.Fatalf("rsync printed no statistics:\n%s", tail(rs.Out, 2000))
	}
	received, _ = strconv.ParseInt(strings.ReplaceAll(s[1], ",", ""), 10, 64)
	return cp, rs, received, dst
}
