package bgp

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/halo-lb/halo/pkg/config"
)

// Announcer is the speaker behind the daemon's announcer seam
// (pkg/daemon.Announcer): the daemon computes the host prefixes of the
// virtual servers that have quorum here (and MASTER for VIPs) and hands
// them over; the announce list and the drain flag are applied here.
type Announcer struct {
	sp *Speaker
}

// NewAnnouncer starts a speaker for cfg's bgp block; it returns nil, nil
// when the config has none. restarting is true when halod adopted a data
// plane that kept forwarding while it was down (graceful restart).
func NewAnnouncer(ctx context.Context, cfg *config.Config, log *slog.Logger, restarting bool) (*Announcer, error) {
	c := FromConfig(cfg.BGP)
	if c == nil {
		return nil, nil
	}
	c.Restarting = restarting
	sp, err := New(*c, log)
	if err != nil {
		return nil, err
	}
	if err := sp.Start(ctx); err != nil {
		return nil, err
	}
	return &Announcer{sp: sp}, nil
}

// Update announces prefixes (host prefixes of eligible virtual-server
// addresses) through the announce list, unless drained.
func (a *Announcer) Update(_ context.Context, prefixes []netip.Prefix) error {
	vss := make([]VirtualServer, 0, len(prefixes))
	for _, p := range prefixes {
		vss = append(vss, VirtualServer{Addr: p.Addr(), QuorumUp: true})
	}
	return a.sp.Update(vss, nil)
}

// Withdraw withdraws every route for good: halod is stopping and its data
// plane goes next.
func (a *Announcer) Withdraw(ctx context.Context) error { return a.sp.WithdrawAll(ctx) }

// Close ends the sessions. Without an earlier Withdraw the routers keep the
// routes for the graceful-restart time (an upgrade with --keep-dataplane).
func (a *Announcer) Close() error {
	a.sp.Stop(context.Background(), false)
	return nil
}

// Speaker gives the control socket and metrics access: Drain, Status,
// Collector.
func (a *Announcer) Speaker() *Speaker { return a.sp }
