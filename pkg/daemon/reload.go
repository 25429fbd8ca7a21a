package daemon

import (
	"errors"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// Reload implements control.Handler: the main loop runs the reload (so it
// never overlaps a SIGHUP one) and the caller waits for its result.
func (d *Daemon) Reload() api.ReloadResult {
	reply := make(chan api.ReloadResult, 1)
	select {
	case d.reloadReq <- reply:
		return <-reply
	case <-time.After(2 * time.Minute):
		return api.ReloadResult{Error: "halod is busy (start-up not complete or another reload running)"}
	}
}

// reload runs on the main loop, between RELOADING=1 and READY=1.
func (d *Daemon) reload() api.ReloadResult {
	d.o.Notifier.Reloading()
	defer d.o.Notifier.Ready("running")
	d.log.Info("reloading configuration", "config", d.o.ConfigFile)
	res := d.tryReload()
	now := time.Now()
	d.metrics.Reloaded(res.OK, now)
	d.mu.Lock()
	d.reloads++
	d.lastOK = res.OK
	d.lastErr = res.Error
	if res.OK {
		d.loadedAt = now
	} else {
		d.failed++
	}
	d.mu.Unlock()
	if !res.OK {
		d.log.Error("reload failed; keeping the running configuration", "err", res.Error)
		return res
	}
	d.log.Info("reload done", "changes", res.Summary)
	d.poke()
	return res
}

// tryReload loads, checks and applies; a failure at any step leaves the
// running configuration as it was. Each part is checked before any part
// changes: the virtual servers (Validate), then VRRP (its Reload checks
// before it touches anything), then the virtual servers are moved.
func (d *Daemon) tryReload() api.ReloadResult {
	var res api.ReloadResult
	cfg, diags := d.o.Load()
	for _, dg := range diags.List {
		if dg.Severity >= config.Warning {
			res.Diagnostics = append(res.Diagnostics, dg.String())
			d.log.Warn("config", "diagnostic", dg.String())
		}
	}
	if cfg == nil {
		res.Error = "the configuration could not be read"
		return res
	}
	if err := diags.Err(d.o.Strict); err != nil {
		res.Error = "the configuration has errors"
		return res
	}
	if d.o.Dataplane != "" {
		cfg.Dataplane.Backend = d.o.Dataplane
	}
	if err := d.capsAllow(cfg); err != nil {
		res.Error = err.Error()
		return res
	}
	running := d.config()
	if !vsmgr.SameSettings(running.Dataplane, cfg.Dataplane) {
		d.log.Warn("reload: the dataplane block changed; it takes effect when halod restarts")
		cfg.Dataplane = running.Dataplane
	}
	if d.emptyDP && len(cfg.VirtualServers) > 0 {
		d.log.Warn("reload: halod started without virtual servers, so without a data plane; the new virtual servers are checked but not forwarded until halod restarts")
	}
	if err := d.mgr.Validate(cfg); err != nil {
		res.Error = err.Error()
		return res
	}
	if err := d.vrrp.Reload(cfg); err != nil {
		res.Error = err.Error()
		return res
	}
	// The virtual servers use the new config from here; ha_suspend and the
	// announcer look VIPs up in it.
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	sum, err := d.mgr.Reload(cfg)
	if err != nil {
		// Validate passed on the same config, so this is a bug; say so.
		res.Error = errors.Join(errors.New("virtual servers not reloaded after VRRP was"), err).Error()
		return res
	}
	d.metrics.SetScripts(scriptNames(cfg))
	d.syncSuspend()
	res.OK = true
	res.Summary = sum.String()
	return res
}

// SetDrain implements control.Handler.
func (d *Daemon) SetDrain(req api.DrainRequest) error {
	id, err := vsmgr.ParseVS(req.VirtualServer, req.Protocol)
	if err != nil {
		return err
	}
	if err := d.mgr.SetDrain(id, req.Real, req.Drain); err != nil {
		return err
	}
	d.poke()
	return nil
}
