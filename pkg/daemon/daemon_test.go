package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/daemon/sdnotify"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpd"
)

// fakeVRRP stands in for pkg/vrrpd: every instance of its config is
// BACKUP, Reload swaps the config (or fails when told to).
type fakeVRRP struct {
	mu       sync.Mutex
	cfg      *config.Config
	reloads  int
	failNext error
	runErr   error
}

func (f *fakeVRRP) Run(ctx context.Context) error {
	if f.runErr != nil {
		return f.runErr
	}
	<-ctx.Done()
	return nil
}

func (f *fakeVRRP) Status() []vrrpd.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []vrrpd.Status
	for _, in := range f.cfg.Instances {
		out = append(out, vrrpd.Status{Name: in.Name, VRID: in.VRID, State: "BACKUP", Priority: in.Priority,
			AdvertsReceived: 3, Trackers: []vrrpd.Tracker{{Name: "lo", Kind: "interface", Up: true}}})
	}
	return out
}

func (f *fakeVRRP) InterfaceDrops() map[string]map[string]int {
	return map[string]map[string]int{"lo": {"unknown_vrid": 2}}
}

func (f *fakeVRRP) Reload(cfg *config.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	f.cfg = cfg
	f.reloads++
	return nil
}

// fakeAnnouncer records what it was asked to announce.
type fakeAnnouncer struct {
	mu        sync.Mutex
	updates   [][]netip.Prefix
	withdrawn bool
	closed    bool
}

func (a *fakeAnnouncer) Update(_ context.Context, p []netip.Prefix) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.updates = append(a.updates, p)
	return nil
}
func (a *fakeAnnouncer) Withdraw(context.Context) error {
	a.mu.Lock()
	a.withdrawn = true
	a.mu.Unlock()
	return nil
}
func (a *fakeAnnouncer) Close() error { a.mu.Lock(); a.closed = true; a.mu.Unlock(); return nil }
func (a *fakeAnnouncer) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.updates) == 0 {
		return "<none>"
	}
	return fmt.Sprint(a.updates[len(a.updates)-1])
}

// listener accepts and closes connections until closed: a live real.
func listener(t *testing.T) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().(*net.TCPAddr).Port
}

func real(port, weight int) string {
	return fmt.Sprintf("  real_server 127.0.0.1 %d { weight %d\n    TCP_CHECK { connect_timeout 1\n      retry 0 } }\n", port, weight)
}

func vs(addr string, reals ...string) string {
	return "virtual_server " + addr + " 80 {\n  delay_loop 1\n  lb_kind DR\n  protocol TCP\n" + strings.Join(reals, "") + "}\n"
}

const instance = "vrrp_instance VI_1 {\n  interface lo\n  virtual_router_id 51\n  priority 100\n  virtual_ipaddress {\n    10.9.9.9/32\n  }\n}\n"

type harness struct {
	t        *testing.T
	conf     string
	rec      *dataplane.Recorder
	vrrp     *fakeVRRP
	ann      *fakeAnnouncer
	d        *Daemon
	sigs     chan os.Signal
	notes    *net.UnixConn
	sock     string
	done     chan error
	cancel   context.CancelFunc
	dumpFile string
}

func start(t *testing.T, text string, prime func(h *harness)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, conf: filepath.Join(dir, "k.conf"), rec: dataplane.NewRecorder(), ann: &fakeAnnouncer{},
		sigs: make(chan os.Signal, 8), sock: filepath.Join(dir, "halod.sock"), done: make(chan error, 1),
		dumpFile: filepath.Join(dir, "halo.data")}
	h.write(text)
	notifyPath := filepath.Join(dir, "notify.sock")
	var err error
	h.notes, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.notes.Close() })
	load := func() (*config.Config, *config.Diags) {
		return config.Load(h.conf, config.Options{ConfigID: "x"})
	}
	cfg, diags := load()
	if err := diags.Err(false); err != nil {
		t.Fatal(err)
	}
	h.vrrp = &fakeVRRP{cfg: cfg}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	h.d = New(cfg, Options{ConfigFile: h.conf, Load: load, Version: "test", Log: log, Control: h.sock,
		DumpFile: h.dumpFile, StatsFile: filepath.Join(dir, "halo.stats"), PIDFile: filepath.Join(dir, "halod.pid"),
		Notifier: sdnotify.New(notifyPath), Signals: h.sigs, Backend: h.rec,
		NewVRRP:      func(*config.Config, *slog.Logger, func(string, vrrp.State)) VRRP { return h.vrrp },
		NewAnnouncer: func(*config.Config, *slog.Logger) (Announcer, error) { return h.ann, nil }})
	if prime != nil {
		prime(h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-h.done })
	select {
	case <-h.d.Ready():
	case err := <-h.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	return h
}

func (h *harness) write(text string) {
	h.t.Helper()
	if err := os.WriteFile(h.conf, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// note reads the next sd_notify datagram.
func (h *harness) note() string {
	h.t.Helper()
	buf := make([]byte, 4096)
	h.notes.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := h.notes.Read(buf)
	if err != nil {
		h.t.Fatalf("sd_notify: %v", err)
	}
	return string(buf[:n])
}

// svc renders one service the way installed does: key=port/weight,...
// sorted; args are port, weight pairs.
func svc(key string, pw ...int) string {
	var rs []string
	for i := 0; i+1 < len(pw); i += 2 {
		rs = append(rs, fmt.Sprintf("%d/%d", pw[i], pw[i+1]))
	}
	sort.Strings(rs)
	return key + "=" + strings.Join(rs, ",")
}

func (h *harness) installed() string {
	svcs, _ := h.rec.Services(context.Background())
	var out []string
	for _, s := range svcs {
		var rs []string
		for _, r := range s.Reals {
			if r.Down {
				continue // failed: installed only so its established flows finish
			}
			rs = append(rs, fmt.Sprintf("%d/%d", r.Port, r.Weight))
		}
		sort.Strings(rs)
		out = append(out, s.Key.String()+"="+strings.Join(rs, ","))
	}
	return strings.Join(out, " ")
}

func (h *harness) waitInstalled(want string) {
	h.t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for h.installed() != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := h.installed(); got != want {
		h.t.Fatalf("installed %q, want %q", got, want)
	}
}

func (h *harness) metrics() string {
	rr := httptest.NewRecorder()
	h.d.MetricsHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	return rr.Body.String()
}

func TestStartReloadDrainStop(t *testing.T) {
	_, p1 := listener(t)
	l2, p2 := listener(t)
	_, p3 := listener(t)
	conf := instance + vs("10.0.0.1", real(p1, 1), real(p2, 1))
	// A HUP sent before start-up completes waits for it.
	h := start(t, conf, func(h *harness) { h.sigs <- syscall.SIGHUP })
	if n := h.note(); !strings.HasPrefix(n, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", n)
	}
	if n := h.note(); !strings.HasPrefix(n, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("queued HUP: %q, want RELOADING=1", n)
	}
	if n := h.note(); !strings.HasPrefix(n, "READY=1") {
		t.Fatalf("after reload %q", n)
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(h.conf), "halod.pid")); err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("pid file: %q %v", b, err)
	}
	h.waitInstalled(svc("tcp:10.0.0.1:80", p1, 1, p2, 1))
	// Not a VRRP master for 10.9.9.9, but 10.0.0.1 belongs to no instance.
	deadline := time.Now().Add(5 * time.Second)
	for h.ann.last() != "[10.0.0.1/32]" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.ann.last(); got != "[10.0.0.1/32]" {
		t.Fatalf("announced %s", got)
	}

	// Real 2 dies: out after its check.
	l2.Close()
	h.waitInstalled(svc("tcp:10.0.0.1:80", p1, 1))

	// Reload: real 1's weight 1 → 5, real 3 and a second virtual server
	// join, real 2 is unchanged and must stay down.
	ctl := control.NewClient(h.sock)
	h.write(instance + "\n\n" + vs("10.0.0.1", real(p1, 5), real(p2, 1), real(p3, 2)) + vs("10.0.0.2", real(p1, 1)))
	res, err := ctl.Reload()
	if err != nil || !res.OK {
		t.Fatalf("reload: %+v %v", res, err)
	}
	if got, want := h.installed(), svc("tcp:10.0.0.1:80", p1, 5, p3, 2)+" "+svc("tcp:10.0.0.2:80", p1, 1); got != want {
		// Real 3 is not alpha: it starts up, so it is in at once.
		t.Fatalf("right after reload %q, want %q (the down real must stay out)", got, want)
	}
	h.note()
	h.note()
	// The new virtual server's address is announced too.
	for deadline := time.Now().Add(5 * time.Second); h.ann.last() != "[10.0.0.1/32 10.0.0.2/32]" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := h.ann.last(); got != "[10.0.0.1/32 10.0.0.2/32]" {
		t.Fatalf("announced after reload: %s", got)
	}

	// A broken config changes nothing and says why.
	h.write(instance + vs("10.0.0.1", real(p1, 5)) + "virtual_server 10.0.0.999 80 {\n}\n")
	res, err = ctl.Reload()
	if err != nil || res.OK || len(res.Diagnostics) == 0 || !strings.Contains(res.Diagnostics[0], "k.conf:") {
		t.Fatalf("broken reload accepted or without diagnostics: %+v %v", res, err)
	}
	if got, want := h.installed(), svc("tcp:10.0.0.1:80", p1, 5, p3, 2)+" "+svc("tcp:10.0.0.2:80", p1, 1); got != want {
		t.Fatalf("after refused reload %q, want %q", got, want)
	}
	// VRRP refusing its part also changes nothing.
	h.write(instance + vs("10.0.0.1", real(p1, 9)))
	h.vrrp.failNext = fmt.Errorf("vrrp_instance VI_1: interface gone")
	if res, _ = ctl.Reload(); res.OK || !strings.Contains(res.Error, "interface gone") {
		t.Fatalf("reload with VRRP refusing: %+v", res)
	}
	if got, want := h.installed(), svc("tcp:10.0.0.1:80", p1, 5, p3, 2)+" "+svc("tcp:10.0.0.2:80", p1, 1); got != want {
		t.Fatalf("after VRRP refused %q, want %q", got, want)
	}
	m := h.metrics()
	for _, want := range []string{"halo_config_last_reload_successful 0", `halo_config_reloads_total{result="failure"} 2`,
		`halo_config_reloads_total{result="success"} 2`, `halo_vrrp_state{instance="VI_1",state="BACKUP"} 1`,
		fmt.Sprintf(`halo_real_server_up{real_server="127.0.0.1:%d",virtual_server="tcp:10.0.0.1:80"} 0`, p2),
		`halo_checks_total{checker="TCP_CHECK",result="failure"} `,
		// The VRRP side reports these (vrrpd.Status), so they exist from start-up.
		`halo_vrrp_adverts_sent_total{instance="VI_1"} 0`, `halo_vrrp_adverts_received_total{instance="VI_1"} 3`,
		`halo_vrrp_gratuitous_sent_total{instance="VI_1"} 0`,
		`halo_vrrp_unknown_vrid_adverts_total{family="inet",interface="lo"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	st, _, err := ctl.Status()
	if err != nil || st.Config.LastReloadSuccessful || st.Config.FailedReloads != 2 || !st.Ready ||
		len(st.VRRP) != 1 || st.VRRP[0].AdvertInterval != "1s" {
		t.Fatalf("status config %+v %+v %v", st.Config, st.VRRP, err)
	}

	// Drain real 1 of the first virtual server, then restore it.
	if err := ctl.Drain(api.DrainRequest{VirtualServer: "10.0.0.1:80", Real: fmt.Sprintf("127.0.0.1:%d", p1), Drain: true}); err != nil {
		t.Fatal(err)
	}
	h.waitInstalled(svc("tcp:10.0.0.1:80", p1, 0, p3, 2) + " " + svc("tcp:10.0.0.2:80", p1, 1))
	if err := ctl.Drain(api.DrainRequest{VirtualServer: "10.0.0.1:80", Real: fmt.Sprintf("127.0.0.1:%d", p1)}); err != nil {
		t.Fatal(err)
	}
	h.waitInstalled(svc("tcp:10.0.0.1:80", p1, 5, p3, 2) + " " + svc("tcp:10.0.0.2:80", p1, 1))
	if err := ctl.Drain(api.DrainRequest{VirtualServer: "10.0.0.3:80", Real: "127.0.0.1:1", Drain: true}); err == nil {
		t.Fatal("drain of an unknown virtual server accepted")
	}

	// SIGUSR1 writes the dump.
	h.sigs <- syscall.SIGUSR1
	deadline = time.Now().Add(5 * time.Second)
	var dump []byte
	for time.Now().Before(deadline) {
		if dump, _ = os.ReadFile(h.dumpFile); len(dump) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(dump), `"dataplane_services"`) || !strings.Contains(string(dump), `"attempts"`) {
		t.Fatalf("dump file:\n%s", dump)
	}

	// SIGUSR2 writes the statistics.
	statsFile := filepath.Join(filepath.Dir(h.conf), "halo.stats")
	h.sigs <- syscall.SIGUSR2
	var stats []byte
	for deadline = time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if stats, _ = os.ReadFile(statsFile); len(stats) > 0 {
			break
		}
	}
	for _, want := range []string{"VRRP Instance: VI_1", "Advertisements:", "Virtual server 10.0.0.1:80/tcp: quorum true",
		fmt.Sprintf("Real server 127.0.0.1:%d down weight 1", p2), "TCP_CHECK attempts", "reloads 4, failed 2"} {
		if !strings.Contains(string(stats), want) {
			t.Errorf("stats file lacks %q:\n%s", want, stats)
		}
	}

	// Shutdown: STOPPING=1, routes withdrawn, pid file removed.
	h.cancel()
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	h.done <- nil // for the cleanup
	for {
		n := h.note()
		if strings.HasPrefix(n, "STOPPING=1") {
			break
		}
	}
	if !h.ann.withdrawn || !h.ann.closed {
		t.Fatal("announcer not withdrawn and closed")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.conf), "halod.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left: %v", err)
	}
}

func TestVRRPFailureStopsStartUp(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	os.WriteFile(conf, []byte(instance), 0o600)
	load := func() (*config.Config, *config.Diags) { return config.Load(conf, config.Options{ConfigID: "x"}) }
	cfg, _ := load()
	fv := &fakeVRRP{cfg: &config.Config{}, runErr: fmt.Errorf("socket: operation not permitted")}
	d := New(cfg, Options{Load: load, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Backend: dataplane.NewRecorder(),
		NewVRRP: func(*config.Config, *slog.Logger, func(string, vrrp.State)) VRRP { return fv }})
	err := d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("Run: %v", err)
	}
}

func TestDesiredPrefixes(t *testing.T) {
	cfg, diags := config.Load("/k.conf", config.Options{ConfigID: "x", FS: config.MapFS{"/k.conf": instance}})
	if err := diags.Err(false); err != nil {
		t.Fatal(err)
	}
	st := api.Status{
		VRRP: []api.Instance{{Name: "VI_1", State: "BACKUP"}},
		VirtualServers: []api.VirtualServer{
			{Address: "10.9.9.9", QuorumUp: true},    // VIP of VI_1, not master: out
			{Address: "10.0.0.1", QuorumUp: true},    // no instance: in
			{Address: "10.0.0.1", QuorumUp: true},    // duplicate address (UDP twin): once
			{Address: "10.0.0.2", QuorumUp: false},   // quorum lost: out
			{Address: "2001:db8::1", QuorumUp: true}, // v6 host prefix
			{Address: "fwmark:7", QuorumUp: true},    // no address: out
		}}
	if got := fmt.Sprint(DesiredPrefixes(st, cfg.Instances)); got != "[10.0.0.1/32 2001:db8::1/128]" {
		t.Fatalf("backup: %s", got)
	}
	st.VRRP[0].State = "MASTER"
	if got := fmt.Sprint(DesiredPrefixes(st, cfg.Instances)); got != "[10.0.0.1/32 10.9.9.9/32 2001:db8::1/128]" {
		t.Fatalf("master: %s", got)
	}
}
