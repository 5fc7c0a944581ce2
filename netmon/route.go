package netmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"

	"laptop.org/upgrade/errdefs"
	mirrorurl "laptop.org/upgrade/mirror"
)

// Reachable returns the first mirror (in the configured order, which is the
// order fetch tries them) that the kernel has a route to over a link that
// is up; "" when none. file:// mirrors are always reachable. A mirror named
// by host name counts when one of its addresses has a route, or, when it
// cannot be resolved now (the resolver may itself be unreachable), when
// there is a default route.
func (m *Monitor) Reachable(ctx context.Context, mirrors []string) string {
	st := m.State()
	for _, s := range mirrors {
		if ok, _ := reachable(ctx, st, s); ok {
			return s
		}
	}
	return ""
}

// reachable decides for one mirror, with the reason when it is not.
func reachable(ctx context.Context, st *State, mirror string) (bool, string) {
	u, err := mirrorurl.Parse(mirror)
	if err != nil {
		return false, err.Error()
	}
	if u.Scheme == "file" {
		return true, ""
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return routeTo(st, a)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		if st.DefaultV6 || st.DefaultV4 {
			return true, ""
		}
		return false, fmt.Sprintf("%s does not resolve and there is no default route", host)
	}
	// IPv6 first, as fetch's dialer prefers it.
	why := ""
	for _, v6 := range []bool{true, false} {
		for _, a := range addrs {
			if a.Unmap().Is6() != v6 {
				continue
			}
			ok, w := routeTo(st, a.Unmap())
			if ok {
				return true, ""
			}
			why = w
		}
	}
	return false, why
}

// routeTo asks the kernel for the route to a (ip route get), pinned to the
// zone's interface for a link-local address, and checks that its link is up.
func routeTo(st *State, a netip.Addr) (bool, string) {
	opts := &netlink.RouteGetOptions{}
	if z := a.Zone(); z != "" {
		idx, err := zoneIndex(z)
		if err != nil {
			return false, err.Error()
		}
		l, ok := st.Link(idx)
		if !ok || !l.Up {
			return false, fmt.Sprintf("interface %s is down", z)
		}
		opts.OifIndex = idx
	}
	routes, err := netlink.RouteGetWithOptions(net.IP(a.WithZone("").AsSlice()), opts)
	if err != nil {
		return false, fmt.Sprintf("no route to %s: %v", a, err)
	}
	for _, r := range routes {
		if r.Type == 7 /* RTN_UNREACHABLE */ || r.Type == 6 /* RTN_BLACKHOLE */ || r.Type == 8 /* RTN_PROHIBIT */ {
			continue
		}
		if l, ok := st.Link(r.LinkIndex); ok && l.Up {
			return true, ""
		}
		if l, ok := st.Link(r.LinkIndex); ok {
			return false, fmt.Sprintf("the route to %s goes through %s, which is down", a, l.Name)
		}
	}
	return false, fmt.Sprintf("no usable route to %s", a)
}

func zoneIndex(z string) (int, error) {
	if n, err := strconv.Atoi(z); err == nil {
		return n, nil
	}
	l, err := netlink.LinkByName(z)
	if err != nil {
		return 0, fmt.Errorf("zone %s: %v", z, err)
	}
	return l.Attrs().Index, nil
}

// WaitRoute blocks until some mirror is reachable (see Reachable) and
// returns it, or fails with ErrNetwork when ctx ends first; callers bound
// ctx. The state is re-checked at every change and every few seconds (a
// resolver may start answering without a netlink event).
func (m *Monitor) WaitRoute(ctx context.Context, mirrors []string) (string, error) {
	for {
		ch := m.changed()
		if s := m.Reachable(ctx, mirrors); s != "" {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no route to any mirror (%s): %v: %w", m.why(ctx, mirrors), context.Cause(ctx), errdefs.ErrNetwork)
		case <-ch:
		case <-time.After(5 * time.Second):
		}
	}
}

// why explains the first mirror's unreachability for an error message.
func (m *Monitor) why(ctx context.Context, mirrors []string) string {
	if len(mirrors) == 0 {
		return "no mirrors"
	}
	_, w := reachable(context.WithoutCancel(ctx), m.State(), mirrors[0])
	return w
}

// ErrLinkLost is the cause given to an attempt that Persist cancelled
// because the route to every mirror went away.
var ErrLinkLost = errors.New("route to the mirrors lost")
