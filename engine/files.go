package engine

import (
	"context"
	"fmt"
	"sync"

	"laptop.org/upgrade/slotfs"
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

// files places the content of every file of one level, on all workers;
// finished temp files are committed in batches after one syncfs. The packs
// go first, as one job that reads them one after the other (each stream
// holds a decoder window of up to 4 MiB) while their items are placed by
// all workers (unpack); the other jobs are single files.
func (ap *applier) files(ctx context.Context, level int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var jobs []job
	packs := job{acts: map[int][]*Action{}}
	for i := range ap.p.Actions {
		a := &ap.p.Actions[i]
		if a.Level != level || a.Pack < 0 {
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
	for i := range ap.p.Actions {
		if a := &ap.p.Actions[i]; a.Level == level && a.Pack < 0 {
			jobs = append(jobs, job{a: a})
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
				ap.slots <- struct{}{}
				pend, err := ap.place(a)
				<-ap.slots
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
}

// A batch of temp files is committed when it holds this many files or
// bytes. Each batch costs one syncfs (150 ms on a busy shared disk), so
// batches are large; each pending temp holds two descriptors.
const (
	commitFiles = 1024
	commitBytes = 256 << 20
)

// committer makes a batch durable with one syncfs, then renames it into
// place: every rename follows the sync of its data. Directory entries are
// made durable by the final syncfs of run.
func (ap *applier) committer(ready <-chan pending) error {
	var batch []pending
	var bytes int64
	var err error
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err == nil {
			err = ap.b.SyncFS()
		}
		for _, p := range batch {
			if err == nil {
				if cerr := p.tmp.Commit(p.base); cerr != nil {
					err = cerr
				}
				ap.tick()
			} else {
				p.tmp.Abort()
			}
		}
		batch, bytes = batch[:0], 0
	}
	for p := range ready {
		batch = append(batch, p)
		bytes += p.size
		if len(batch) >= commitFiles || bytes >= commitBytes {
			flush()
		}
	}
	flush()
	return err
}
