package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"syscall"

	"github.com/halo-lb/halo/pkg/check"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/dataplane/xdp"
	"github.com/halo-lb/halo/pkg/metrics"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// daemon runs VRRP, the checkers and the data plane in the foreground until
// SIGTERM or SIGINT, then stops them the way keepalived does. SIGHUP
// reloads the configuration; a configuration that does not load leaves the
// running one in place.
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

	v := vrrpd.New(cfg, log)
	lvs := &lvsRunner{backend: backend, log: log, vrrp: v}
	if err := lvs.start(cfg); err != nil {
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	v.OnTransition = func(name string, to vrrp.State) { lvs.setMaster(name, to == vrrp.Master) }

	ctl, err := control.Listen(o.control, func() control.Status {
		return control.Status{VRRP: nonNil(v.Status()), VirtualServers: nonNilVS(lvs.status())}
	})
	if err != nil {
		lvs.stop(false)
		fmt.Fprintln(stderr, "halod: control socket:", err)
		return 1
	}
	defer ctl.Close()

	if o.metricsAddr != "" {
		src := metrics.Sources{VRRP: v.Status, Virtual: lvs.status, Dataplane: backend}
		if xb, ok := backend.(*xdp.Backend); ok {
			src.Reasons = xb.ReasonNames
		}
		addr, err := metrics.Serve(ctx, o.metricsAddr, src)
		if err != nil {
			lvs.stop(false)
			fmt.Fprintln(stderr, "halod: metrics:", err)
			return 1
		}
		log.Info("metrics", "url", "http://"+addr.String()+"/metrics")
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(cfg, o, log, lvs)
			}
		}
	}()

	vrrpErr := v.Run(ctx)
	lvs.stop(true)
	if vrrpErr != nil {
		fmt.Fprintln(stderr, "halod:", vrrpErr)
		return 1
	}
	log.Info("halod stopped")
	return 0
}

// reload re-reads the config on SIGHUP. Errors keep the running config.
// Virtual servers and checkers are replaced (the data plane only sees the
// difference); VRRP and data-plane settings take effect at the next start.
func reload(running *config.Config, o *options, log *slog.Logger, lvs *lvsRunner) {
	log.Info("SIGHUP: reloading configuration", "config", o.configFile)
	cfg, diags := config.Load(o.configFile, loadOptions(o))
	for _, d := range diags.List {
		if d.Severity >= config.Warning {
			log.Warn("config", "diagnostic", d.String())
		}
	}
	if cfg == nil || diags.Err(o.strict) != nil {
		log.Error("reload failed; keeping the running configuration")
		return
	}
	if o.dataplane != "" {
		cfg.Dataplane.Backend = o.dataplane
	}
	if !sameVRRP(running, cfg) {
		log.Warn("reload: VRRP settings changed; they take effect when halod restarts")
	}
	if !reflect.DeepEqual(strip(running.Dataplane), strip(cfg.Dataplane)) {
		log.Warn("reload: dataplane block changed; it takes effect when halod restarts")
	}
	cfg.Instances, cfg.SyncGroups = running.Instances, running.SyncGroups
	if err := lvs.replace(cfg); err != nil {
		log.Error("reload failed; keeping the running configuration", "err", err)
		return
	}
	log.Info("reload done", "virtual_servers", len(cfg.VirtualServers))
}

// sameVRRP compares what the VRRP daemon runs, ignoring file positions.
func sameVRRP(a, b *config.Config) bool {
	pick := func(c *config.Config) any {
		return []any{c.Instances, c.SyncGroups, c.Scripts, c.TrackFiles, c.Global}
	}
	return reflect.DeepEqual(strip(pick(a)), strip(pick(b)))
}

// strip turns v into JSON-shaped data without "pos" fields.
func strip(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			delete(t, "pos")
			for k, v := range t {
				t[k] = walk(v)
			}
		case []any:
			for i := range t {
				t[i] = walk(t[i])
			}
		}
		return x
	}
	return walk(out)
}

// lvsRunner owns the virtual-server manager and its checkers, so a reload
// can swap them.
type lvsRunner struct {
	backend dataplane.Backend
	log     *slog.Logger
	vrrp    *vrrpd.Daemon

	mu     sync.Mutex
	cfg    *config.Config
	mgr    *vsmgr.Manager
	sched  *check.Scheduler
	cancel context.CancelFunc
}

func (l *lvsRunner) start(cfg *config.Config) error {
	mgr, err := vsmgr.New(cfg, l.backend, script.NewRunner(&cfg.Global), l.log)
	if err != nil {
		return err
	}
	sched := check.NewScheduler(0)
	ctx, cancel := context.WithCancel(context.Background())
	if err := mgr.Start(ctx, sched); err != nil {
		cancel()
		return err
	}
	l.mu.Lock()
	l.cfg, l.mgr, l.sched, l.cancel = cfg, mgr, sched, cancel
	l.mu.Unlock()
	// ha_suspend follows the VRRP states as they are now.
	for _, st := range l.vrrp.Status() {
		l.setMaster(st.Name, st.State == vrrp.Master.String())
	}
	return nil
}

func (l *lvsRunner) stop(omega bool) {
	l.mu.Lock()
	mgr, sched, cancel := l.mgr, l.sched, l.cancel
	l.mu.Unlock()
	if mgr == nil {
		return
	}
	cancel()
	sched.Wait()
	if omega {
		mgr.Stop()
	} else {
		mgr.Close()
	}
}

// replace builds the new manager before retiring the old one, so a config
// the manager rejects leaves everything as it was.
func (l *lvsRunner) replace(cfg *config.Config) error {
	if _, err := vsmgr.New(cfg, dataplane.NewRecorder(), script.NewRunner(&cfg.Global), l.log); err != nil {
		return err
	}
	l.stop(false)
	return l.start(cfg)
}

func (l *lvsRunner) setMaster(instance string, master bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mgr == nil {
		return
	}
	var addrs []netip.Addr
	for _, in := range l.cfg.Instances {
		if in.Name == instance {
			for _, a := range in.VIPs {
				addrs = append(addrs, a.Prefix.Addr())
			}
		}
	}
	l.mgr.SetMaster(addrs, master)
}

func (l *lvsRunner) status() []vsmgr.VSStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mgr == nil {
		return nil
	}
	return l.mgr.Status()
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
