package daemon

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/dataplane/ipvs"
	"github.com/halo-lb/halo/pkg/dataplane/xdp"
)

// BackendParams is what a data-plane factory gets.
type BackendParams struct {
	Dataplane config.Dataplane // the config's dataplane block (backend overridden by --dataplane)
	BPFFS     string           // where pinned maps and links live
	Keep      bool             // leave the data plane forwarding on exit (upgrades)
	Log       *slog.Logger
}

// BackendFactory opens a data plane.
type BackendFactory func(BackendParams) (dataplane.Backend, error)

// backends maps the `dataplane { backend NAME }` names to their factories.
// A backend registers here with one line.
var backends = map[string]BackendFactory{
	"none": func(BackendParams) (dataplane.Backend, error) { return dataplane.NewNone(), nil },
	"xdp": func(p BackendParams) (dataplane.Backend, error) {
		return xdp.New(xdpOptions(p))
	},
	"ipvs": func(p BackendParams) (dataplane.Backend, error) {
		return ipvs.New(ipvs.Options{KeepOnClose: p.Keep, Log: p.Log})
	},
}

// Backends lists the registered backend names (for flag help).
func Backends() []string {
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// openBackend opens the configured data plane. A config without virtual
// servers needs none, so none is opened (nothing to attach, no privileges
// needed for a VRRP-only halod).
func openBackend(cfg *config.Config, p BackendParams) (dataplane.Backend, error) {
	name := cfg.Dataplane.Backend
	f, ok := backends[name]
	if !ok {
		return nil, fmt.Errorf("unknown data plane %q (have %v)", name, Backends())
	}
	if name != "none" && len(cfg.VirtualServers) == 0 {
		return dataplane.NewNone(), nil
	}
	p.Dataplane = cfg.Dataplane
	p.Log = p.Log.With("dataplane", name)
	return f(p)
}

// xdpOptions carries the dataplane block into the XDP backend. Zero values
// stay zero so the backend's own defaults apply (a config loaded by the
// parser always has them filled).
func xdpOptions(p BackendParams) xdp.Options {
	dp := p.Dataplane
	return xdp.Options{Interfaces: dp.Interfaces, Mode: dp.XDPMode,
		PinPath: p.BPFFS, KeepOnClose: p.Keep, Log: p.Log,
		MaxServices: uint32(max(dp.MaxServices, 0)), MaxReals: uint32(max(dp.MaxReals, 0)),
		FlowTableSize: uint32(max(dp.FlowTableSize, 0)),
		TCPTimeout:    dp.TCPTimeout.D(), TCPFinTimeout: dp.TCPFinTimeout.D(), UDPTimeout: dp.UDPTimeout.D(),
		SYNFloodThreshold: dp.SYNFloodThreshold, FlowTracking: dp.FlowTracking,
		SelectionHash: dp.SelectionHash}
}
