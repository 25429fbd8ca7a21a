package daemon

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/halo-lb/halo/pkg/bgp"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/control/api"
)

// Announcer advertises the addresses of healthy virtual servers to
// routers (pkg/bgp implements it with BGP). The daemon owns the policy and
// the announcer only carries it out:
//
//   - Update receives the whole desired set each time it may have changed
//     (start-up, a checker verdict, a quorum change, a VRRP transition, a
//     reload). A virtual server's address is in the set while its quorum
//     is up and, when the address is a VIP of a VRRP instance, while that
//     instance is MASTER; host prefixes (/32, /128), sorted, no duplicates.
//     An announcer withdraws what is no longer in the set. Calls come from
//     one goroutine, never concurrently.
//   - Withdraw removes every announcement (halod stopping), before Close.
//   - Close releases the sessions.
//
// Errors are logged by the daemon and the set is offered again at the next
// change; an announcer retries its sessions on its own.
type Announcer interface {
	Update(ctx context.Context, prefixes []netip.Prefix) error
	Withdraw(ctx context.Context) error
	Close() error
}

// AnnouncerFactory builds the announcer for a config; it returns nil, nil
// when the config asks for none.
type AnnouncerFactory func(cfg *config.Config, log *slog.Logger) (Announcer, error)

// DesiredPrefixes applies the announcement policy (pkg/bgp.Desired: an
// address is in while every virtual server at it has quorum and, for a VIP,
// while an instance holding it is MASTER) to a status snapshot and the VIPs
// of the VRRP instances.
func DesiredPrefixes(st api.Status, instances []*config.VRRPInstance) []netip.Prefix {
	state := map[string]string{}
	for _, in := range st.VRRP {
		state[in.Name] = in.State
	}
	var bs bgp.State
	for _, in := range instances {
		for _, v := range in.VIPs {
			bs.VIPs = append(bs.VIPs, bgp.VIP{Addr: v.Prefix.Addr(), Master: state[in.Name] == "MASTER"})
		}
	}
	for _, vs := range st.VirtualServers {
		a, err := netip.ParseAddr(vs.Address)
		if err != nil {
			continue // fwmark and group services have no single address
		}
		bs.VirtualServers = append(bs.VirtualServers, bgp.VirtualServer{Addr: a, QuorumUp: vs.QuorumUp})
	}
	return bgp.Desired(bs)
}
