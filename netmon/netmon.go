// Package netmon follows the machine's links, addresses and routes through
// netlink, so that the upgrade daemon waits for a route before it talks to a
// mirror and resumes a download that a lost link paused, by itself, as soon
// as the link returns.
//
// Shape (after tailscale's net/netmon): netlink subscriptions feed a pump
// goroutine, which writes a one-slot "something changed" channel with
// select/default; a debounce goroutine waits for the storm to settle (a link
// flap sends dozens of RTM_NEWADDR/RTM_NEWROUTE messages), re-reads the whole
// state with a dump, compares it with the last one, and calls the registered
// callbacks only on a real change. A subscription that fails (ENOBUFS when
// the kernel's queue overflowed) is re-opened and followed by a full dump, so
// a lost message cannot leave a stale view. Close stops everything through
// the subscriptions' done channel and waits for every goroutine.
//
// netmon only observes; it never changes the network configuration.
package netmon

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Options configures a Monitor; the zero value is usable.
type Options struct {
	// Debounce is how long changes must be quiet before the state is
	// re-read (default 300 ms).
	Debounce time.Duration
	// Poll re-reads the state this often even without events, a safety net
	// for a kernel that drops notifications silently (default 30 s).
	Poll time.Duration
	// Logf receives resyncs and subscription errors (optional).
	Logf func(string, ...any)
}

// ChangeDelta is what a callback receives.
type ChangeDelta struct {
	Old, New *State
}

// Monitor watches the network of the namespace it was created in.
type Monitor struct {
	o      Options
	change chan struct{} // one slot: "re-read the state"
	stop   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	state    *State
	gen      chan struct{} // closed and replaced at every state change
	cbs      map[int]func(ChangeDelta)
	nextCB   int
	resyncs  int
	closed   bool
	closeErr error
}

// New subscribes to link, address and route changes and reads the initial
// state.
func New(o Options) (*Monitor, error) {
	if o.Debounce <= 0 {
		o.Debounce = 300 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	st, err := dump()
	if err != nil {
		return nil, err
	}
	m := &Monitor{o: o, change: make(chan struct{}, 1), stop: make(chan struct{}), state: st,
		gen: make(chan struct{}), cbs: map[int]func(ChangeDelta){}}
	// Subscribe before starting the goroutines so that a failure to
	// subscribe at all is an error of New, not a log line.
	s, err := m.subscribe()
	if err != nil {
		return nil, err
	}
	m.wg.Add(2)
	go m.pump(s)
	go m.debounce()
	return m, nil
}

// subs are one set of open subscriptions.
type subs struct {
	done  chan struct{}
	links chan netlink.LinkUpdate
	addrs chan netlink.AddrUpdate
	route chan netlink.RouteUpdate
	errs  chan error
}

// rcvbuf is large enough that a route flap on a busy machine does not
// overflow; when it does anyway, we resync.
const rcvbuf = 1 << 20

func (m *Monitor) subscribe() (*subs, error) {
	s := &subs{
		done:  make(chan struct{}),
		links: make(chan netlink.LinkUpdate, 64),
		addrs: make(chan netlink.AddrUpdate, 64),
		route: make(chan netlink.RouteUpdate, 64),
		errs:  make(chan error, 3),
	}
	report := func(err error) {
		select {
		case s.errs <- err:
		default:
		}
	}
	var errs []error
	errs = append(errs, netlink.LinkSubscribeWithOptions(s.links, s.done, netlink.LinkSubscribeOptions{ErrorCallback: report, ReceiveBufferSize: rcvbuf}))
	errs = append(errs, netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{ErrorCallback: report, ReceiveBufferSize: rcvbuf}))
	errs = append(errs, netlink.RouteSubscribeWithOptions(s.route, s.done, netlink.RouteSubscribeOptions{ErrorCallback: report, ReceiveBufferSize: rcvbuf}))
	if err := errors.Join(errs...); err != nil {
		close(s.done)
		s.drain()
		return nil, err
	}
	return s, nil
}

// drain reads every channel until the library closes it: its receive
// goroutines block on sending, and would leak if nobody read after done.
// A subscription that failed to open never closes its channel, so drain
// gives up on a channel after done plus a grace period.
func (s *subs) drain() {
	grace := time.After(5 * time.Second)
	links, addrs, route := s.links, s.addrs, s.route
	for links != nil || addrs != nil || route != nil {
		select {
		case _, ok := <-links:
			if !ok {
				links = nil
			}
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
			}
		case _, ok := <-route:
			if !ok {
				route = nil
			}
		case <-grace:
			return
		}
	}
}

// kick asks the debouncer for a re-read; never blocks.
func (m *Monitor) kick() {
	select {
	case m.change <- struct{}{}:
	default:
	}
}

// pump turns netlink messages into kicks, and re-subscribes (then resyncs)
// when a subscription fails.
func (m *Monitor) pump(s *subs) {
	defer m.wg.Done()
	for {
		failed := false
		select {
		case <-m.stop:
			close(s.done)
			s.drain()
			return
		case _, ok := <-s.links:
			failed = !ok
		case _, ok := <-s.addrs:
			failed = !ok
		case _, ok := <-s.route:
			failed = !ok
		case err := <-s.errs:
			failed = isOverrun(err)
			if !failed {
				m.o.Logf("netmon: %v", err)
			}
		}
		if !failed {
			m.kick()
			continue
		}
		m.o.Logf("netmon: netlink subscription lost (kernel queue overrun?); resubscribing and re-reading the state")
		close(s.done)
		s.drain()
		for {
			ns, err := m.subscribe()
			if err == nil {
				s = ns
				break
			}
			m.o.Logf("netmon: resubscribe: %v", err)
			select {
			case <-m.stop:
				return
			case <-time.After(time.Second):
			}
		}
		m.mu.Lock()
		m.resyncs++
		m.mu.Unlock()
		m.kick()
	}
}

// isOverrun: the receive error that means messages were lost.
func isOverrun(err error) bool {
	// netlink's error callback formats the errno into a string ("Receive
	// failed: no buffer space available"), dropping its type.
	return errors.Is(err, unix.ENOBUFS) || err != nil && strings.Contains(err.Error(), unix.ENOBUFS.Error())
}

// debounce re-reads the state once changes have been quiet for Debounce,
// and every Poll regardless.
func (m *Monitor) debounce() {
	defer m.wg.Done()
	poll := time.NewTicker(m.o.Poll)
	defer poll.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-poll.C:
		case <-m.change:
			// Let the storm settle.
			t := time.NewTimer(m.o.Debounce)
		settle:
			for {
				select {
				case <-m.stop:
					t.Stop()
					return
				case <-m.change:
					t.Reset(m.o.Debounce)
				case <-t.C:
					break settle
				}
			}
		}
		m.refresh()
	}
}

// refresh re-reads the state and tells the callbacks if it changed.
func (m *Monitor) refresh() {
	st, err := dump()
	if err != nil {
		m.o.Logf("netmon: read state: %v", err)
		return
	}
	m.mu.Lock()
	old := m.state
	if old.Equal(st) {
		m.mu.Unlock()
		return
	}
	m.state = st
	close(m.gen)
	m.gen = make(chan struct{})
	cbs := make([]func(ChangeDelta), 0, len(m.cbs))
	for _, cb := range m.cbs {
		cbs = append(cbs, cb)
	}
	m.mu.Unlock()
	for _, cb := range cbs {
		cb(ChangeDelta{Old: old, New: st})
	}
}

// State returns the last state read (do not modify it).
func (m *Monitor) State() *State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// changed returns a channel closed at the next state change.
func (m *Monitor) changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Resyncs counts subscriptions re-opened after an overrun.
func (m *Monitor) Resyncs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resyncs
}

// RegisterChangeCallback calls cb (from the monitor's goroutine; keep it
// short) after every change of the state. The returned function removes it.
func (m *Monitor) RegisterChangeCallback(cb func(ChangeDelta)) (unregister func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextCB
	m.nextCB++
	m.cbs[id] = cb
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.cbs, id)
	}
}

// Close stops the subscriptions and waits for the monitor's goroutines.
func (m *Monitor) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return m.closeErr
	}
	m.closed = true
	m.mu.Unlock()
	close(m.stop)
	m.wg.Wait()
	return nil
}
