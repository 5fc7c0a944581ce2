package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"laptop.org/upgrade/delta"
	"laptop.org/upgrade/digest"
	"laptop.org/upgrade/errdefs"
	"laptop.org/upgrade/repo"
)

// requestCost is what fetching one more blob costs on the wire beyond its
// bytes (request and response headers), in bytes: small blobs are cheaper
// in a pack even when the pack carries a few items this client skips.
const requestCost = 400

// choosePacks marks level-0 downloads (deltas and objects) that a pack
// delivers: a pack is fetched when its size is at most what its needed
// items cost one by one. An item listed by several packs comes from the
// first.
func (p *Plan) choosePacks(t *Target) {
	packs := t.Delivery.Packs
	if len(packs) == 0 {
		return
	}
	where := map[digest.Digest]int{}
	for k := range packs {
		if !repo.KnownCodec(packs[k].Codec) {
			continue // its items come some other way
		}
		for _, it := range packs[k].Items {
			if _, ok := where[it.SHA256]; !ok {
				where[it.SHA256] = k
			}
		}
	}
	alone := make([]int64, len(packs))
	users := make([][]int, len(packs))
	seen := map[digest.Digest]bool{}
	for i := range p.Actions {
		a := &p.Actions[i]
		key, ok := packKey(a)
		if !ok || a.Level > 0 {
			continue
		}
		k, ok := where[key]
		if !ok {
			continue
		}
		if !seen[key] {
			seen[key] = true
			alone[k] += a.cost() + requestCost
		}
		users[k] = append(users[k], i)
	}
	for k := range packs {
		if len(users[k]) > 0 && packs[k].Size <= alone[k] {
			for _, i := range users[k] {
				p.Actions[i].Pack = k
			}
		}
	}
}

// packKey is the pack item an action would use: the delta file, or the
// raw content for an object.
func packKey(a *Action) (digest.Digest, bool) {
	switch a.Src {
	case Delta:
		return a.Delta.SHA256, true
	case Object:
		return a.Object.SHA256, true
	}
	return digest.Zero, false
}

// packBufMax: items up to this size are read whole, checked, and placed by
// a pool of goroutines while the stream goes on (a pack of a thousand
// small deltas would otherwise be one worker's sequential job); larger
// ones are placed as they stream.
const packBufMax = 4 << 20

// unpack streams pack k once and places every action that uses one of its
// items: an object item is written into the action's temp file, a delta
// item is applied to the action's base. Every item's digest is checked
// before its bytes are used (or, for an item placed as it streams, before
// its result is accepted), as well as each result's, in writeTemp. A second
// action with the same item needs the same content, so it copies the first
// one's temp file.
func (ap *applier) unpack(ctx context.Context, k int, acts []*Action, out func(pending) error) error {
	pk := &ap.t.Delivery.Packs[k]
	users := map[digest.Digest][]*Action{}
	for _, a := range acts {
		key, _ := packKey(a)
		users[key] = append(users[key], a)
	}
	f, err := ap.staged(pk.SHA256)
	if err != nil {
		return err
	}
	defer f.Close()
	var total int64
	for _, it := range pk.Items {
		total += it.Size
	}
	var dec io.ReadCloser
	if pk.Codec == repo.CodecXZ {
		dec, err = delta.NewXZReader(f, repo.XZDictMax, total)
	} else {
		dec, err = delta.NewReader(f, total)
	}
	if err != nil {
		return err
	}
	defer dec.Close()

	// Workers place the items read whole while this goroutine streams
	// the pack; the first error, from either, stops both.
	g, gctx := errgroup.WithContext(ctx)
	tasks := make(chan packTask, ap.workers)
	for range ap.workers {
		g.Go(func() error {
			for t := range tasks {
				if gctx.Err() != nil {
					continue
				}
				ap.slots <- struct{}{}
				err := ap.placeItem(t.users, bytes.NewReader(t.data), nil, out)
				<-ap.slots
				if err != nil {
					return fmt.Errorf("pack %s: %w", pk.SHA256, err)
				}
			}
			return nil
		})
	}
	err = ap.streamItems(gctx, pk, dec, users, tasks, out)
	close(tasks)
	if werr := g.Wait(); werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// streamItems reads pack pk's items from dec in order: an item nobody uses
// is skipped, a large one is placed as it streams, and the others are read
// whole, checked, and handed to the workers on tasks.
func (ap *applier) streamItems(ctx context.Context, pk *repo.Pack, dec io.Reader, users map[digest.Digest][]*Action, tasks chan<- packTask, out func(pending) error) error {
	for _, it := range pk.Items {
		if ctx.Err() != nil {
			return nil // the caller reports why
		}
		us := users[it.SHA256]
		switch {
		case len(us) == 0:
			if _, err := io.CopyN(io.Discard, dec, it.Size); err != nil {
				return fmt.Errorf("pack %s: %v: %w", pk.SHA256, err, errdefs.ErrCorrupt)
			}
		case it.Size > packBufMax:
			h := sha256.New()
			item := io.TeeReader(io.LimitReader(dec, it.Size), h)
			ap.slots <- struct{}{}
			err := ap.placeItem(us, item, func() error {
				if _, err := io.Copy(io.Discard, item); err != nil {
					return err
				}
				return checkItem(pk, it, digest.Sum(h))
			}, out)
			<-ap.slots
			if err != nil {
				return fmt.Errorf("pack %s: %w", pk.SHA256, err)
			}
		default:
			b := make([]byte, it.Size)
			if _, err := io.ReadFull(dec, b); err != nil {
				return fmt.Errorf("pack %s: %v: %w", pk.SHA256, err, errdefs.ErrCorrupt)
			}
			if err := checkItem(pk, it, digest.Of(b)); err != nil {
				return err
			}
			select {
			case tasks <- packTask{users: us, data: b}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

type packTask struct {
	users []*Action
	data  []byte
}

func checkItem(pk *repo.Pack, it repo.PackItem, got digest.Digest) error {
	if got != it.SHA256 {
		return fmt.Errorf("pack %s item %s: digest %s: %w", pk.SHA256, it.SHA256, got, errdefs.ErrCorrupt)
	}
	return nil
}

// placeItem places the actions using one pack item read from item (with
// check, if any, run after the first result is written).
func (ap *applier) placeItem(us []*Action, item io.Reader, check func() error, out func(pending) error) (err error) {
	defer func() {
		for _, a := range us {
			ap.baseDone(a.Entry.Path, err)
		}
	}()
	first, err := ap.writeTemp(us[0], func(w io.Writer) error {
		if us[0].Src == Object {
			_, err := io.Copy(w, item)
			return err
		}
		return ap.applyDeltaFrom(us[0], item, w)
	}, check)
	if err != nil {
		return fmt.Errorf("%s: %w", us[0].Entry.Path, err)
	}
	for _, a := range us[1:] {
		pend, err := ap.writeTemp(a, func(w io.Writer) error {
			_, err := io.Copy(w, io.NewSectionReader(first.tmp.File, 0, us[0].Entry.Size))
			return err
		}, nil)
		if err == nil {
			err = out(pend)
		}
		if err != nil {
			first.tmp.Abort()
			return fmt.Errorf("%s: %w", a.Entry.Path, err)
		}
	}
	return out(first)
}
