// Package daemon is halod's lifecycle: start-up in order (data plane,
// virtual-server manager and its checkers, control socket, metrics, VRRP,
// then READY), the main loop (signals, reloads, the watchdog, the BGP
// announcer's feed) and shutdown (STOPPING, VRRP stops as keepalived does,
// then the checkers, omega's notifiers, the data plane). cmd/halod only
// parses flags and calls Run.
//
// Seams: data planes come from a factory keyed by backend name
// (backends.go); VRRP is an interface (pkg/vrrpd implements it); an
// optional Announcer (announcer.go) is fed the addresses to advertise.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/halo-lb/halo/pkg/caps"
	"github.com/halo-lb/halo/pkg/check"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/daemon/sdnotify"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/metrics"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// VRRP is what the daemon needs of the VRRP side; *vrrpd.Daemon is one.
type VRRP interface {
	// Run runs the instances until ctx ends, then stops them.
	Run(ctx context.Context) error
	Status() []vrrpd.Status
	// Reload diffs the instances by name against cfg (see vrrpd.Reload);
	// on error nothing changed.
	Reload(cfg *config.Config) error
}

// Options configure a daemon. Load, Log and Version are required.
type Options struct {
	ConfigFile string
	// Load reads and checks the config (the same way at start and reload).
	Load   func() (*config.Config, *config.Diags)
	Strict bool
	// Dataplane overrides the config's backend when set.
	Dataplane     string
	BPFFS         string
	KeepDataplane bool
	Control       string // control socket path; empty: none
	MetricsAddr   string // empty: no /metrics
	DumpFile      string // SIGUSR1 target
	StatsFile     string // SIGUSR2 target
	PIDFile       string
	Version       string
	Log           *slog.Logger
	Notifier      *sdnotify.Notifier // nil: not under systemd
	// Signals, when set, delivers SIGHUP, SIGUSR1, SIGUSR2, SIGTERM and
	// SIGINT. The caller subscribes it as early as it can, so a HUP during
	// start-up waits in the channel instead of killing the process.
	Signals <-chan os.Signal
	// NotifyTimeout bounds each notify script, VRRP's and the virtual
	// servers'; zero means DefaultNotifyTimeout.
	NotifyTimeout time.Duration
	// DropCaps: once up, keep only the capabilities the configuration
	// needs (halod sets it unless --keep-caps; tests leave it off so the
	// test process keeps its own).
	DropCaps bool

	// Backend, when set, is used instead of the factory (tests).
	Backend dataplane.Backend
	// NewVRRP builds the VRRP side; default pkg/vrrpd.
	NewVRRP func(cfg *config.Config, log *slog.Logger, onTransition func(string, vrrp.State)) VRRP
	// NewAnnouncer, when set, builds the route announcer (BGP).
	NewAnnouncer AnnouncerFactory
}

// DefaultNotifyTimeout is how long a notify script may run (--notify-timeout).
const DefaultNotifyTimeout = vrrpd.DefaultNotifyTimeout

func (o Options) notifyTimeout() time.Duration {
	if o.NotifyTimeout > 0 {
		return o.NotifyTimeout
	}
	return DefaultNotifyTimeout
}

// newVRRPD is the default VRRP side.
func newVRRPD(cfg *config.Config, log *slog.Logger, on func(string, vrrp.State), notifyTimeout time.Duration) *vrrpd.Daemon {
	v := vrrpd.New(cfg, log)
	v.OnTransition = on
	v.NotifyTimeout = notifyTimeout
	return v
}

// Daemon is one running halod.
type Daemon struct {
	o       Options
	log     *slog.Logger
	started time.Time
	ready   chan struct{}
	isReady atomic.Bool

	backend   dataplane.Backend
	emptyDP   bool // backend is none only because the config had no virtual servers
	vrrp      VRRP
	mgr       *vsmgr.Manager
	metrics   *metrics.Metrics
	ann       Announcer
	annPoke   chan struct{}
	reloadReq chan chan api.ReloadResult
	kept      *caps.Plan // what dropCaps kept; nil: nothing dropped

	mu       sync.Mutex // guards the fields below
	cfg      *config.Config
	loadedAt time.Time
	reloads  int
	failed   int
	lastOK   bool
	lastErr  string
}

// New prepares a daemon for cfg, which must have loaded without errors.
func New(cfg *config.Config, o Options) *Daemon {
	if o.Dataplane != "" {
		cfg.Dataplane.Backend = o.Dataplane
	}
	return &Daemon{o: o, log: o.Log, cfg: cfg, ready: make(chan struct{}), annPoke: make(chan struct{}, 1),
		reloadReq: make(chan chan api.ReloadResult), lastOK: true}
}

// Ready is closed once start-up is complete.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Run starts everything, serves until ctx ends or SIGTERM/SIGINT, then
// stops everything in keepalived's order.
func (d *Daemon) Run(ctx context.Context) (err error) {
	d.started = time.Now()
	d.loadedAt = d.started
	cfg := d.config()
	d.log.Info("halod starting", "version", d.o.Version, "config", d.o.ConfigFile, "instances", len(cfg.Instances),
		"virtual_servers", len(cfg.VirtualServers), "dataplane", cfg.Dataplane.Backend)
	if d.o.PIDFile != "" {
		if err := writePIDFile(d.o.PIDFile); err != nil {
			return err
		}
		defer os.Remove(d.o.PIDFile)
	}

	// 1. The data plane.
	d.backend = d.o.Backend
	if d.backend == nil {
		d.backend, err = openBackend(cfg, BackendParams{BPFFS: d.o.BPFFS, Keep: d.o.KeepDataplane, Log: d.log})
		if err != nil {
			return err
		}
		d.emptyDP = cfg.Dataplane.Backend != "none" && len(cfg.VirtualServers) == 0
	}
	defer func() {
		// A halod that fails before it is up must not tear down a data
		// plane that is forwarding (an upgrade that fails to start, a bad
		// interface name): it leaves the pinned program in place.
		if r, ok := d.backend.(interface{ Release() error }); ok && !d.isReady.Load() {
			d.log.Warn("start-up failed: the data plane is left as it was")
			r.Release()
			return
		}
		d.backend.Close()
	}()

	// 2. Metrics registry, so every check from the first is counted.
	src := metrics.Sources{Status: d.status, Dataplane: d.backend, VRRPReports: jsonFields(vrrpd.Status{})}
	if v, ok := d.backend.(interface{ ReasonNames() map[string]uint64 }); ok {
		src.Verdicts = v.ReasonNames
	}
	if f, ok := d.backend.(interface{ FlowEntries() int }); ok {
		src.FlowEntries = f.FlowEntries
	}
	if f, ok := d.backend.(interface{ RealFlows() map[netip.Addr]int }); ok {
		src.RealFlows = f.RealFlows
	}
	if f, ok := d.backend.(interface {
		ChangedSlots() map[dataplane.ServiceKey]int
	}); ok {
		src.ChangedSlots = func() map[string]int {
			out := map[string]int{}
			for k, n := range f.ChangedSlots() {
				out[k.String()] = n
			}
			return out
		}
	}
	// The VRRP side is built below, before anything can scrape.
	src.InterfaceDrops = func() map[string]map[string]int {
		if v, ok := d.vrrp.(interface {
			InterfaceDrops() map[string]map[string]int
		}); ok {
			return v.InterfaceDrops()
		}
		return nil
	}
	d.metrics = metrics.New(d.o.Version, src)
	d.metrics.SetScripts(scriptNames(cfg))

	// 3. Virtual servers and their checkers.
	runner := script.NewRunner(&cfg.Global)
	d.mgr, err = vsmgr.New(cfg, d.backend, runner, d.log)
	if err != nil {
		return err
	}
	d.mgr.SetNotifyTimeout(d.o.notifyTimeout())
	d.mgr.OnResult = d.metrics.ObserveCheck
	d.mgr.OnChange = d.poke
	lvsCtx, stopLVS := context.WithCancel(context.Background())
	sched := check.NewScheduler(0)
	if err := d.mgr.Start(lvsCtx, sched); err != nil {
		stopLVS()
		return err
	}
	// lvs_notify_fifo_script is the checker side's; notify_fifo_script and
	// vrrp_notify_fifo_script are pkg/vrrpd's, started there once.
	startFIFOScript(lvsCtx, cfg.Global.LVSNotifyFIFO, runner, d.log)
	lvsStopped := false
	stopChecks := func(omega bool) {
		if lvsStopped {
			return
		}
		lvsStopped = true
		stopLVS()
		sched.Wait()
		if omega {
			d.mgr.Stop()
		} else {
			d.mgr.Close()
		}
	}
	defer stopChecks(false)

	// 4. The VRRP side (built now so status works; run below).
	newVRRP := d.o.NewVRRP
	if newVRRP == nil {
		newVRRP = func(cfg *config.Config, log *slog.Logger, on func(string, vrrp.State)) VRRP {
			return newVRRPD(cfg, log, on, d.o.notifyTimeout())
		}
	}
	d.vrrp = newVRRP(cfg, d.log, d.onTransition)

	// 5. Control socket and /metrics.
	if d.o.Control != "" {
		ctl, err := control.Listen(d.o.Control, d)
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		defer ctl.Close()
	}
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if d.o.MetricsAddr != "" {
		addr, err := d.metrics.Serve(mctx, d.o.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		d.log.Info("metrics", "url", "http://"+addr.String()+"/metrics")
	}

	// 6. The announcer, fed from here on.
	if d.o.NewAnnouncer != nil {
		d.ann, err = d.o.NewAnnouncer(cfg, d.log.With("announcer", "bgp"))
		if err != nil {
			return fmt.Errorf("announcer: %w", err)
		}
		d.registerBGPMetrics()
	}

	// 7. VRRP, then READY once its instances are up.
	vctx, stopVRRP := context.WithCancel(context.Background())
	defer stopVRRP()
	vrrpDone := make(chan error, 1)
	go func() { vrrpDone <- d.vrrp.Run(vctx) }()
	vrrpRunning := true
	if exited, err := d.waitVRRP(ctx, vrrpDone, len(cfg.Instances)); err != nil {
		stopVRRP()
		if !exited {
			<-vrrpDone
		}
		return err
	}
	d.syncSuspend()
	d.dropCaps(cfg)
	d.isReady.Store(true)
	close(d.ready)
	d.o.Notifier.Ready("running")
	d.log.Info("halod ready", "instances", len(cfg.Instances), "virtual_servers", len(cfg.VirtualServers))
	d.poke()

	var watchdog <-chan time.Time
	if d.o.Notifier != nil && d.o.Notifier.Watchdog > 0 {
		t := time.NewTicker(d.o.Notifier.Watchdog / 2)
		defer t.Stop()
		watchdog = t.C
		d.o.Notifier.Ping()
	}
	var announced []netip.Prefix
	var loopErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case sig := <-d.o.Signals:
			switch sig {
			case syscall.SIGHUP:
				d.reload()
			case syscall.SIGUSR1:
				d.writeDump()
			case syscall.SIGUSR2:
				d.writeStats()
			default:
				d.log.Info("signal: stopping", "signal", sig.String())
				break loop
			}
		case reply := <-d.reloadReq:
			reply <- d.reload()
		case err := <-vrrpDone:
			vrrpRunning = false
			if err != nil {
				loopErr = fmt.Errorf("vrrp: %w", err)
			}
			break loop
		case <-watchdog:
			d.o.Notifier.Ping()
		case <-d.annPoke:
			announced = d.announce(announced)
		}
	}

	// Shutdown: VRRP first (priority-0 adverts, VIPs, notify_stop), as
	// keepalived; then the routes, the checkers with omega, the data plane.
	d.o.Notifier.Stopping()
	d.log.Info("halod stopping")
	stopVRRP()
	if vrrpRunning {
		if err := <-vrrpDone; err != nil && loopErr == nil {
			loopErr = fmt.Errorf("vrrp: %w", err)
		}
	}
	if d.ann != nil {
		// With the data plane kept (an upgrade), the routes stay: the
		// announcer closes without withdrawing and routers that support
		// graceful restart keep them until the next halod announces.
		if !d.o.KeepDataplane {
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := d.ann.Withdraw(wctx); err != nil {
				d.log.Warn("announcer withdraw", "err", err)
			}
			cancel()
		}
		d.ann.Close()
	}
	stopChecks(true)
	d.log.Info("halod stopped")
	return loopErr
}

// waitVRRP waits until the VRRP side reports every instance (its sockets
// are open and the machines started) or fails.
func (d *Daemon) waitVRRP(ctx context.Context, done chan error, instances int) (exited bool, err error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for len(d.vrrp.Status()) < instances {
		select {
		case err := <-done:
			if err == nil {
				err = errors.New("stopped during start-up")
			}
			return true, fmt.Errorf("vrrp: %w", err)
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
	return false, nil
}

// onTransition runs on the VRRP event loop after each state change.
func (d *Daemon) onTransition(name string, to vrrp.State) {
	// keepalived's wording, for people and tools that grep for it.
	d.log.Info(fmt.Sprintf("(%s) Entering %s STATE", name, to), "instance", name, "state", to.String())
	d.setMaster(name, to == vrrp.Master)
	d.poke()
}

func (d *Daemon) setMaster(instance string, master bool) {
	if d.mgr == nil {
		return
	}
	var addrs []netip.Addr
	for _, in := range d.config().Instances {
		if in.Name == instance {
			for _, a := range in.VIPs {
				addrs = append(addrs, a.Prefix.Addr())
			}
		}
	}
	d.mgr.SetMaster(addrs, master)
}

// syncSuspend tells ha_suspend the VRRP states as they are now.
func (d *Daemon) syncSuspend() {
	for _, st := range d.vrrp.Status() {
		d.setMaster(st.Name, st.State == vrrp.Master.String())
	}
}

func (d *Daemon) poke() {
	select {
	case d.annPoke <- struct{}{}:
	default:
	}
}

// announce offers the announcer the desired set when it changed.
func (d *Daemon) announce(last []netip.Prefix) []netip.Prefix {
	if d.ann == nil {
		return last
	}
	want := DesiredPrefixes(d.status(), d.config().Instances)
	if last != nil && equalPrefixes(last, want) {
		return last
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.ann.Update(ctx, want); err != nil {
		d.log.Warn("announcer update", "err", err, "prefixes", len(want))
		return nil
	}
	if want == nil {
		want = []netip.Prefix{}
	}
	return want
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func scriptNames(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Scripts {
		out = append(out, s.Name)
	}
	return out
}

// writePIDFile refuses to take over the file of a live halod.
func writePIDFile(path string) error {
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(string(trimSpace(b))); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid file %s: halod already runs as pid %d", path, pid)
		}
	}
	return os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// jsonFields names the JSON fields of a struct value (what the VRRP side
// reports; see metrics.Sources.VRRPReports).
func jsonFields(v any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}
