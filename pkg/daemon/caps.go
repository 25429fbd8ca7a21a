package daemon

import (
	"fmt"
	"net"
	"strconv"

	"github.com/halo-lb/halo/pkg/caps"
	"github.com/halo-lb/halo/pkg/config"
)

// capsPlan is what cfg asks of the process once halod is up: every socket
// it listens on is open and the data plane is attached by then, so only
// what later events need is kept (docs/reliability.md#capabilities).
func (d *Daemon) capsPlan(cfg *config.Config) caps.Plan {
	n := caps.NeedsOf(cfg)
	// A data plane opened as "none" because there were no virtual servers
	// never loads a program in this process.
	n.XDP = cfg.Dataplane.Backend == "xdp" && !d.emptyDP
	n.LowPorts = n.LowPorts || lowPort(d.o.MetricsAddr)
	return caps.For(n)
}

// lowPort reports whether addr (host:port) names a port below 1024.
func lowPort(addr string) bool {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 1024
}

// dropCaps gives up every capability the running configuration does not
// need. A failure is logged and halod keeps running with what it has: the
// drop narrows what a compromised halod could do, it is not needed to
// serve.
func (d *Daemon) dropCaps(cfg *config.Config) {
	if !d.o.DropCaps {
		return
	}
	p := d.capsPlan(cfg)
	if err := caps.Drop(p); err != nil {
		d.log.Warn("capabilities not dropped; halod keeps all it was started with", "err", err)
		return
	}
	d.kept = &p
	bnd := "all"
	if p.Bounding != caps.All {
		bnd = p.Bounding.String()
	}
	d.log.Info("capabilities dropped", "kept", p.Keep.String(), "bounding", bnd)
}

// capsAllow refuses a configuration that needs a capability halod gave up
// at start (a first script user, BGP on port 179, a root script when the
// bounding set was cut): the process cannot get it back, so the reload
// fails and the running configuration stays, with an error that says why.
func (d *Daemon) capsAllow(cfg *config.Config) error {
	if d.kept == nil {
		return nil
	}
	p := d.capsPlan(cfg)
	if missing := p.Keep &^ d.kept.Keep; missing != 0 {
		return fmt.Errorf("the new configuration needs %s, which halod gave up after start; restart halod to apply it (or run it with --keep-caps)", missing)
	}
	if p.Bounding == caps.All && d.kept.Bounding != caps.All {
		return fmt.Errorf("the new configuration runs scripts as root, which halod's reduced bounding set would not give them full root; restart halod to apply it (or run it with --keep-caps)")
	}
	return nil
}
