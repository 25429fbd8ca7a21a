package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/signal"
	"syscall"

	"github.com/halo-lb/halo/pkg/check"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/dataplane/xdp"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// daemon runs VRRP, the checkers and the data plane in the foreground until
// SIGTERM or SIGINT, then stops them the way keepalived does.
func daemon(cfg *config.Config, o *options, stderr io.Writer) int {
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("halod starting", "version", version, "config", o.configFile, "instances", len(cfg.Instances),
		"virtual_servers", len(cfg.VirtualServers), "dataplane", cfg.Dataplane.Backend)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	backend, err := openBackend(cfg, o, log)
	if err != nil {
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	defer backend.Close()

	runner := script.NewRunner(&cfg.Global)
	mgr, err := vsmgr.New(cfg, backend, runner, log)
	if err != nil {
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	v := vrrpd.New(cfg, log)
	vips := map[string][]netip.Addr{}
	for _, in := range cfg.Instances {
		for _, a := range in.VIPs {
			vips[in.Name] = append(vips[in.Name], a.Prefix.Addr())
		}
	}
	v.OnTransition = func(name string, to vrrp.State) { mgr.SetMaster(vips[name], to == vrrp.Master) }

	ctl, err := control.Listen(o.control, func() control.Status {
		return control.Status{VRRP: nonNil(v.Status()), VirtualServers: nonNilVS(mgr.Status())}
	})
	if err != nil {
		fmt.Fprintln(stderr, "halod: control socket:", err)
		return 1
	}
	defer ctl.Close()

	sched := check.NewScheduler(0)
	cctx, stopChecks := context.WithCancel(context.Background())
	if err := mgr.Start(cctx, sched); err != nil {
		stopChecks()
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	vrrpErr := v.Run(ctx)
	stopChecks()
	sched.Wait()
	mgr.Stop()
	if vrrpErr != nil {
		fmt.Fprintln(stderr, "halod:", vrrpErr)
		return 1
	}
	log.Info("halod stopped")
	return 0
}

func nonNil(s []vrrpd.Status) []vrrpd.Status {
	if s == nil {
		return []vrrpd.Status{}
	}
	return s
}

func nonNilVS(s []vsmgr.VSStatus) []vsmgr.VSStatus {
	if s == nil {
		return []vsmgr.VSStatus{}
	}
	return s
}

func openBackend(cfg *config.Config, o *options, log *slog.Logger) (dataplane.Backend, error) {
	switch cfg.Dataplane.Backend {
	case "none":
		return dataplane.NewNone(), nil
	case "xdp":
		if len(cfg.VirtualServers) == 0 {
			return dataplane.NewNone(), nil
		}
		return xdp.New(xdp.Options{Interfaces: cfg.Dataplane.Interfaces, Mode: cfg.Dataplane.XDPMode,
			PinPath: o.bpffs, KeepOnClose: o.keepDataplane, Log: log.With("dataplane", "xdp")})
	case "ipvs":
		if len(cfg.VirtualServers) == 0 {
			return dataplane.NewNone(), nil
		}
		return nil, fmt.Errorf("the ipvs data plane is not available in this build yet; use `dataplane { backend xdp }` or --dataplane none")
	}
	return nil, fmt.Errorf("unknown data plane %q", cfg.Dataplane.Backend)
}
