package engine

import (
	"context"
	"fmt"
	"sync"

	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/slotfs"
	"laptop.org/upgrade/verify"
)

// The apply's file stage: workers place files (one at a time, or a pack's
// items in parallel), and one committer makes them durable in batches.

// job is one unit of apply work: an action, or every pack of the level
// with the actions each delivers.
type job struct {
	a     *Action
	packs []int
	acts  map[int][]*Action
}

// files places the content of every file, on all workers; finished temp
// files are committed in batches after one syncfs. The packs go first, as
// one job that reads them one after the other (each stream holds a decoder
// window of up to 4 MiB) while their items are placed by all workers
// (unpack); the other jobs are single files, in level order: a delta whose
// second base is placed in this run waits for that base's temp (see
// baseFile), never for a level to be committed.
func (ap *applier) files(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var jobs []job
	packs := job{acts: map[int][]*Action{}}
	for i := range ap.p.Actions {
		a := &ap.p.Actions[i]
		if a.Pack < 0 {
			continue
		}
		if _, ok := packs.acts[a.Pack]; !ok {
			packs.packs = append(packs.packs, a.Pack)
		}
		packs.acts[a.Pack] = append(packs.acts[a.Pack], a)
	}
	if len(packs.packs) > 0 {
		jobs = append(jobs, packs)
	}
	for lvl := 0; lvl < max(ap.p.Levels, 1); lvl++ {
		for i := range ap.p.Actions {
			if a := &ap.p.Actions[i]; a.Level == lvl && a.Pack < 0 {
				jobs = append(jobs, job{a: a})
			}
		}
	}
	work := make(chan *job)
	ready := make(chan pending, 64)
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	out := func(p pending) error { ready <- p; return nil }
	var wg sync.WaitGroup
	for w := 0; w < ap.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if ctx.Err() != nil {
					continue
				}
				if j.a == nil {
					for _, k := range j.packs {
						if err := ap.unpack(ctx, k, ap.notThere(j.acts[k]), out); err != nil {
							fail(err)
							break
						}
					}
					continue
				}
				a := j.a
				if err := ap.waitBase(ctx, a); err != nil {
					fail(fmt.Errorf("%s (%s): %w", a.Entry.Path, a.Src, err))
					continue
				}
				ap.slots <- struct{}{}
				pend, err := ap.place(a)
				<-ap.slots
				ap.baseDone(a.Entry.Path, err)
				if err != nil {
					fail(fmt.Errorf("%s (%s): %w", a.Entry.Path, a.Src, err))
					continue
				}
				if pend.tmp != nil {
					ready <- pend
				} else {
					ap.tick()
				}
			}
		}()
	}
	commitDone := make(chan error, 1)
	go func() { commitDone <- ap.committer(ready) }()
	for i := range jobs {
		select {
		case work <- &jobs[i]:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	close(ready)
	if err := <-commitDone; err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// notThere drops (and counts as done) the actions an interrupted run
// already placed.
func (ap *applier) notThere(acts []*Action) []*Action {
	if !ap.resume {
		return acts
	}
	var out []*Action
	for _, a := range acts {
		if ap.alreadyThere(a.Entry) {
			ap.baseDone(a.Entry.Path, nil)
			ap.tick()
		} else {
			out = append(out, a)
		}
	}
	return out
}

func (ap *applier) tick() {
	n := ap.done.Add(1)
	if ap.progress != nil {
		ap.progress(int(n), len(ap.p.Actions))
	}
}

type pending struct {
	tmp  *slotfs.Temp
	base string
	size int64
	ino  verify.Inode  // the temp's inode (zero: unknown, not recorded)
	sum  digest.Digest // its content's, as written and checked
}

// A batch of temp files is committed when it holds this many files or
// bytes. Each batch costs one syncfs (150 ms on a busy shared disk), so
// batches are large; each pending temp holds two descriptors, and up to
// two batches are open at once (one being flushed, one filling).
const (
	commitFiles = 768
	commitBytes = 256 << 20
)

// committer gathers finished temp files into batches, and a flusher makes
// each batch durable with one syncfs, then renames it into place: every
// rename follows the sync of its data. The next batch fills while one is
// flushed, so that the workers do not stop for every syncfs. Directory
// entries are made durable by the final syncfs of run.
func (ap *applier) committer(ready <-chan pending) error {
	batches := make(chan []pending) // unbuffered: one batch flushing, one filling
	flushed := make(chan error, 1)
	go func() {
		var err error
		for batch := range batches {
			err = ap.flush(batch, err)
		}
		flushed <- err
	}()
	var batch []pending
	var bytes int64
	for p := range ready {
		batch = append(batch, p)
		bytes += p.size
		if len(batch) >= commitFiles || bytes >= commitBytes {
			batches <- batch
			batch, bytes = nil, 0
		}
	}
	if len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	return <-flushed
}

// flush syncs the filesystem and commits batch, or aborts it after an
// earlier error (returned again, or the first error of this batch).
func (ap *applier) flush(batch []pending, err error) error {
	if err == nil {
		err = ap.b.SyncFS()
	}
	for _, p := range batch {
		if err == nil {
			if cerr := p.tmp.Commit(p.base); cerr != nil {
				err = cerr
			} else if p.ino != (verify.Inode{}) {
				ap.written[p.ino] = p.sum
			}
			ap.tick()
		} else {
			p.tmp.Abort()
		}
	}
	return err
}
