package netmon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is one interface as far as reaching a mirror is concerned.
type Link struct {
	Index int
	Name  string
	// Up: administratively up and with carrier (IFF_UP and IFF_LOWER_UP,
	// operational state up or unknown as for loopback and tun).
	Up bool
	// Addrs are the usable addresses (not tentative, not failed DAD).
	Addrs []netip.Prefix
}

// State is a snapshot of what matters for reaching mirrors.
type State struct {
	Links     []Link // by index
	DefaultV6 bool   // a default IPv6 route through a link that is up
	DefaultV4 bool
}

// Equal compares two states.
func (s *State) Equal(o *State) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.DefaultV4 == o.DefaultV4 && s.DefaultV6 == o.DefaultV6 &&
		slices.EqualFunc(s.Links, o.Links, func(a, b Link) bool {
			return a.Index == b.Index && a.Name == b.Name && a.Up == b.Up && slices.Equal(a.Addrs, b.Addrs)
		})
}

// Link returns the link with index i.
func (s *State) Link(i int) (Link, bool) {
	for _, l := range s.Links {
		if l.Index == i {
			return l, true
		}
	}
	return Link{}, false
}

// String is one line for logs: "lo up [::1/128 …], veth0 down".
func (s *State) String() string {
	var b strings.Builder
	for i, l := range s.Links {
		if i > 0 {
			b.WriteString(", ")
		}
		st := "down"
		if l.Up {
			st = "up"
		}
		fmt.Fprintf(&b, "%s %s %v", l.Name, st, l.Addrs)
	}
	fmt.Fprintf(&b, "; default route v6 %v v4 %v", s.DefaultV6, s.DefaultV4)
	return b.String()
}

// linkUp: the link can carry packets now.
func linkUp(a *netlink.LinkAttrs) bool {
	if a.RawFlags&unix.IFF_UP == 0 || a.RawFlags&unix.IFF_LOWER_UP == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// dump reads the whole state from the kernel.
func dump() (*State, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netmon: list links: %w", err)
	}
	st := &State{}
	for _, l := range links {
		a := l.Attrs()
		lk := Link{Index: a.Index, Name: a.Name, Up: linkUp(a)}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("netmon: addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				continue
			}
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			ones, _ := ad.Mask.Size()
			lk.Addrs = append(lk.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		slices.SortFunc(lk.Addrs, func(x, y netip.Prefix) int { return strings.Compare(x.String(), y.String()) })
		st.Links = append(st.Links, lk)
	}
	slices.SortFunc(st.Links, func(x, y Link) int { return x.Index - y.Index })
	for _, fam := range []int{netlink.FAMILY_V6, netlink.FAMILY_V4} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("netmon: list routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			if r.Flags&unix.RTNH_F_LINKDOWN != 0 {
				continue
			}
			if l, ok := st.Link(r.LinkIndex); ok && l.Up || r.LinkIndex == 0 && len(r.MultiPath) > 0 {
				if fam == netlink.FAMILY_V6 {
					st.DefaultV6 = true
				} else {
					st.DefaultV4 = true
				}
			}
		}
	}
	return st, nil
}
