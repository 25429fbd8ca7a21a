package metrics

import (
	"net/netip"

	"github.com/halo-lb/halo/pkg/dataplane"
)

func netipAddrPort(addr string, port int) (string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(a, uint16(port)).String(), nil
}

// realStats finds a real's counters in its service; DR reals may be
// installed with port 0 ("the service's port").
func realStats(s dataplane.ServiceStats, ap string) dataplane.Stats {
	for k, v := range s.Reals {
		if k.String() == ap {
			return v
		}
	}
	p, err := netip.ParseAddrPort(ap)
	if err != nil {
		return dataplane.Stats{}
	}
	return s.Reals[dataplane.RealKey{Addr: p.Addr()}]
}
