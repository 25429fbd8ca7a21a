package daemon

import (
	"errors"

	"github.com/halo-lb/halo/pkg/bgp"
	"github.com/halo-lb/halo/pkg/control/api"
)

// bgpSpeaker is the announcer when it is pkg/bgp's: status, drain and
// metrics reach the speaker through it.
func (d *Daemon) bgpSpeaker() *bgp.Speaker {
	if a, ok := d.ann.(interface{ Speaker() *bgp.Speaker }); ok {
		return a.Speaker()
	}
	return nil
}

// SetBGPDrain is POST /v1/bgp/drain (haloctl drain): every route is
// withdrawn, or announced again; the data plane keeps forwarding what it
// still receives.
func (d *Daemon) SetBGPDrain(on bool) error {
	sp := d.bgpSpeaker()
	if sp == nil {
		return errors.New("no bgp block in the running config")
	}
	return sp.Drain(on)
}

func (d *Daemon) bgpStatus() *api.BGP {
	sp := d.bgpSpeaker()
	if sp == nil {
		return nil
	}
	s := sp.Status()
	out := &api.BGP{LocalAS: s.LocalAS, RouterID: s.RouterID, Drained: s.Drained, Announced: s.Announced,
		UpdatesSent: s.UpdatesSent, Peers: []api.BGPPeer{}}
	if out.Announced == nil {
		out.Announced = []string{}
	}
	for _, p := range s.Peers {
		out.Peers = append(out.Peers, api.BGPPeer{Address: p.Address, RemoteAS: p.RemoteAS, State: p.State, Up: p.Up,
			Since: p.Since, HoldTime: p.HoldTime, UpdatesSent: p.UpdatesSent, MD5: p.MD5})
	}
	return out
}

func (d *Daemon) registerBGPMetrics() {
	if sp := d.bgpSpeaker(); sp != nil && d.metrics != nil {
		if err := d.metrics.Register(sp.Collector()); err != nil {
			d.log.Warn("bgp metrics", "err", err)
		}
	}
}
