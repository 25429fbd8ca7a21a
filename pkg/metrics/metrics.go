// Package metrics exposes halod's state to Prometheus. Gauges and the
// counters the daemons keep anyway (VRRP, data plane) are read from status
// snapshots at scrape time, so nothing on the hot paths updates them; the
// check histogram and reload counters are observed as they happen.
//
// Every series exists from start-up: each counter is exported for every
// label value it can take (zero until it counts), so an alert's rate()
// never meets a missing series. Counters carry no state label; state is a
// gauge (halo_vrrp_state, one series per state, 0 or 1).
package metrics

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// Sources are the snapshots read at scrape time; any may be nil.
type Sources struct {
	Status    func() api.Status
	Dataplane dataplane.Backend
	// Verdicts are the data plane's packet counts by verdict and reason (XDP).
	Verdicts func() map[string]uint64
	// FlowEntries is the connection-table occupancy (XDP).
	FlowEntries func() int
	// RealFlows is the connection-table occupancy per real address (XDP:
	// its tables key flows by real address, so a real serving several
	// virtual servers has one count).
	RealFlows func() map[netip.Addr]int
	// ChangedSlots are, per virtual server (dataplane.ServiceKey.String),
	// the table slots whose flows the XDP program looks up because the
	// real set changed and they have not settled yet.
	ChangedSlots func() map[string]int
	// VRRPReports names the api.Instance JSON fields the VRRP side fills
	// ("adverts_sent", "trackers", …); series built from a field it does
	// not fill are left out rather than exported as a false 0. Nil: all.
	VRRPReports map[string]bool
	// InterfaceDrops are the adverts no instance claimed, per receiving
	// socket ("eth0", "eth0/inet6") and reason (vrrpd.Daemon.InterfaceDrops).
	InterfaceDrops func() map[string]map[string]int
}

func (s Sources) reports(field string) bool { return s.VRRPReports == nil || s.VRRPReports[field] }

// VRRPStates are the values of halo_vrrp_state's state label.
var VRRPStates = []string{"INIT", "BACKUP", "MASTER", "FAULT", "STOP"}

// AdvertErrors are the reasons a received advert is dropped: every one is
// exported for every instance from start-up.
var AdvertErrors = []string{"bad_length", "bad_version", "bad_type", "bad_family", "malformed", "bad_ttl",
	"auth_type_mismatch", "auth_failure", "interval_mismatch", "bad_checksum", "expected_unicast",
	"expected_multicast", "vip_mismatch", "unknown_unicast_source"}

// InterfaceErrors are the reasons an advert no instance can claim is
// dropped on an interface (it did not parse); unknown_vrid has its own
// counter.
var InterfaceErrors = []string{"bad_length", "bad_version", "bad_type", "bad_family", "malformed"}

// CheckerTypes are the values of the checker label.
var CheckerTypes = []string{"TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "PING_CHECK", "UDP_CHECK", "DNS_CHECK", "SMTP_CHECK"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	vrrpState       = desc("halo_vrrp_state", "1 for the state the VRRP instance is in, 0 for the others.", "instance", "state")
	vrrpPrio        = desc("halo_vrrp_priority", "Configured VRRP priority.", "instance")
	vrrpEffPrio     = desc("halo_vrrp_effective_priority", "Effective VRRP priority (configured plus tracker weights).", "instance")
	vrrpTransitions = desc("halo_vrrp_transitions_total", "VRRP state transitions.", "instance")
	vrrpSent        = desc("halo_vrrp_adverts_sent_total", "VRRP adverts sent.", "instance")
	vrrpReceived    = desc("halo_vrrp_adverts_received_total", "VRRP adverts received for the instance.", "instance")
	vrrpErrors      = desc("halo_vrrp_advert_errors_total", "Received VRRP adverts dropped, by reason.", "instance", "reason")
	vrrpGratuitous  = desc("halo_vrrp_gratuitous_sent_total", "Gratuitous ARPs and unsolicited neighbour advertisements sent.", "instance")
	vrrpUnknownVRID = desc("halo_vrrp_unknown_vrid_adverts_total",
		"VRRP adverts received on an interface for a VRID no instance there runs.", "interface", "family")
	vrrpIfErrors = desc("halo_vrrp_interface_advert_errors_total",
		"VRRP packets received on an interface that did not parse, by reason.", "interface", "family", "reason")
	trackUp       = desc("halo_track_script_up", "1 while the vrrp_script succeeds.", "script")
	realUp        = desc("halo_real_server_up", "1 when every checker of the real server passes.", "virtual_server", "real_server")
	realWeight    = desc("halo_real_server_weight", "Weight the real server has in the data plane now (0 when drained).", "virtual_server", "real_server")
	quorum        = desc("halo_virtual_server_quorum_up", "1 while the virtual server has quorum.", "virtual_server")
	dpPackets     = desc("halo_dataplane_packets_total", "Packets the data plane forwarded for the virtual server.", "virtual_server")
	dpBytes       = desc("halo_dataplane_bytes_total", "Bytes the data plane forwarded for the virtual server.", "virtual_server")
	dpConns       = desc("halo_dataplane_connections_total", "Connections (new flows) the data plane scheduled for the virtual server (IPVS; XDP does not count connections: its flow table records flows only where a table changed).", "virtual_server")
	dpRealPackets = desc("halo_dataplane_real_packets_total", "Packets the data plane sent to the real server.", "virtual_server", "real_server")
	dpRealBytes   = desc("halo_dataplane_real_bytes_total", "Bytes the data plane sent to the real server.", "virtual_server", "real_server")
	dpRealConns   = desc("halo_dataplane_real_connections_total", "Connections (new flows) the data plane scheduled to the real server (IPVS; XDP does not count them: halo_xdp_real_flow_table_entries counts the flows it records where a table changed).", "virtual_server", "real_server")
	xdpVerdicts   = desc("halo_xdp_packets_total", "Packets the XDP program handled, by verdict and reason.", "reason")
	xdpFlows      = desc("halo_xdp_flow_table_entries", "Entries in the XDP connection table.")
	xdpRealFlows  = desc("halo_xdp_real_flow_table_entries", "Entries in the XDP connection table that lead to the real server address.", "real_address")
	xdpChanged    = desc("halo_xdp_changed_slots", "Table slots of the virtual server whose real changed and whose flows the XDP program still looks up in its flow table (0 once they settle; of 16381).", "virtual_server")
)

// Metrics is halod's registry.
type Metrics struct {
	reg         *prometheus.Registry
	checkDur    *prometheus.HistogramVec
	checks      *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastOKTime  prometheus.Gauge
	mu          sync.Mutex
	scriptNames []string
}

// New builds the registry for a daemon of the given version.
func New(version string, s Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "halo_build_info",
		Help:        "Always 1; the labels say which halod runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	m.checkDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "halo_check_duration_seconds",
		Help:    "Duration of health-check attempts, by checker type.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"checker"})
	m.checks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "halo_checks_total",
		Help: "Health-check attempts, by checker type and result (success, failure)."}, []string{"checker", "result"})
	for _, c := range CheckerTypes {
		m.checkDur.WithLabelValues(c)
		m.checks.WithLabelValues(c, "success")
		m.checks.WithLabelValues(c, "failure")
	}
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "halo_config_reloads_total",
		Help: "Configuration reloads, by result (success, failure)."}, []string{"result"})
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "halo_config_last_reload_successful",
		Help: "1 when the last reload (or the start-up load) succeeded."})
	m.lastOKTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "halo_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful load of the configuration."})
	m.Loaded(true, time.Now())
	m.reg.MustRegister(build, m.checkDur, m.checks, m.reloads, m.lastOK, m.lastOKTime, &collector{s: s, m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds a collector of another package (pkg/bgp's) to /metrics.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// SetScripts names the vrrp_scripts of the config, so halo_track_script_up
// exists for each from start-up (0 until the VRRP daemon reports it up).
func (m *Metrics) SetScripts(names []string) {
	m.mu.Lock()
	m.scriptNames = append([]string(nil), names...)
	m.mu.Unlock()
}

// ObserveCheck records one check attempt.
func (m *Metrics) ObserveCheck(checker string, ok bool, d time.Duration) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.checkDur.WithLabelValues(checker).Observe(d.Seconds())
	m.checks.WithLabelValues(checker, result).Inc()
}

// Loaded records a (re)load of the configuration.
func (m *Metrics) Loaded(ok bool, at time.Time) {
	if ok {
		m.lastOK.Set(1)
		m.lastOKTime.Set(float64(at.UnixNano()) / 1e9)
	} else {
		m.lastOK.Set(0)
	}
}

// Reloaded records a reload and its result.
func (m *Metrics) Reloaded(ok bool, at time.Time) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
	} else {
		m.reloads.WithLabelValues("failure").Inc()
	}
	m.Loaded(ok, at)
}

// Handler serves the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Serve listens on addr and serves /metrics until ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return l.Addr(), nil
}

type collector struct {
	s Sources
	m *Metrics
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{vrrpState, vrrpPrio, vrrpEffPrio, vrrpTransitions, vrrpSent, vrrpReceived,
		vrrpErrors, vrrpGratuitous, vrrpUnknownVRID, vrrpIfErrors, trackUp, realUp, realWeight, quorum, dpPackets, dpBytes, dpConns,
		dpRealPackets, dpRealBytes, dpRealConns, xdpVerdicts, xdpFlows, xdpRealFlows, xdpChanged} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// VSLabel is the virtual_server label of a virtual server: the data
// plane's service key form (tcp:10.0.0.1:80, tcp:[2001:db8::1]:80,
// fwmark:7), or group:NAME.
func VSLabel(vs api.VirtualServer) string {
	if i := strings.LastIndexByte(vs.ID, '/'); i > 0 {
		return vs.ID[i+1:] + ":" + vs.ID[:i]
	}
	if vs.ID != "" {
		return vs.ID
	}
	return vs.Protocol + ":" + net.JoinHostPort(vs.Address, strconv.Itoa(vs.Port))
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	var st api.Status
	if c.s.Status != nil {
		st = c.s.Status()
	}
	scripts := map[string]bool{}
	if c.s.reports("trackers") {
		c.m.mu.Lock()
		for _, n := range c.m.scriptNames {
			scripts[n] = false
		}
		c.m.mu.Unlock()
	}
	for _, in := range st.VRRP {
		for _, s := range VRRPStates {
			gauge(vrrpState, b2f(in.State == s), in.Name, s)
		}
		gauge(vrrpPrio, float64(in.Priority), in.Name)
		gauge(vrrpEffPrio, float64(in.EffectivePriority), in.Name)
		counter(vrrpTransitions, float64(in.Transitions), in.Name)
		if c.s.reports("adverts_sent") {
			counter(vrrpSent, float64(in.AdvertsSent), in.Name)
		}
		if c.s.reports("adverts_received") {
			counter(vrrpReceived, float64(in.AdvertsReceived), in.Name)
		}
		if c.s.reports("gratuitous_sent") {
			counter(vrrpGratuitous, float64(in.GratuitousSent), in.Name)
		}
		for _, r := range AdvertErrors {
			counter(vrrpErrors, float64(in.Drops[r]), in.Name, r)
		}
		for _, t := range in.Trackers {
			if t.Kind == "script" && c.s.reports("trackers") {
				scripts[t.Name] = scripts[t.Name] || t.Up
			}
		}
	}
	for n, up := range scripts {
		gauge(trackUp, b2f(up), n)
	}
	if c.s.InterfaceDrops != nil {
		for k, drops := range c.s.InterfaceDrops() {
			ifname, fam := k, "inet"
			if i := strings.LastIndexByte(k, '/'); i > 0 {
				ifname, fam = k[:i], k[i+1:]
			}
			counter(vrrpUnknownVRID, float64(drops["unknown_vrid"]), ifname, fam)
			for _, r := range InterfaceErrors {
				counter(vrrpIfErrors, float64(drops[r]), ifname, fam, r)
			}
		}
	}

	stats := map[string]dataplane.ServiceStats{}
	if c.s.Dataplane != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		list, err := c.s.Dataplane.Stats(ctx)
		cancel()
		if err == nil {
			for _, s := range list {
				stats[s.Key.String()] = s
			}
		}
	}
	seen := map[string]bool{}
	for _, vs := range st.VirtualServers {
		name := VSLabel(vs)
		gauge(quorum, b2f(vs.QuorumUp), name)
		for _, r := range vs.Reals {
			rn := net.JoinHostPort(r.Address, strconv.Itoa(r.Port))
			gauge(realUp, b2f(r.Up), name, rn)
			gauge(realWeight, float64(r.Weight), name, rn)
		}
		if strings.HasPrefix(name, "group:") {
			continue // a group's services are exported under their own keys below
		}
		s := stats[name]
		seen[name] = true
		counter(dpPackets, float64(s.Stats.Packets), name)
		counter(dpBytes, float64(s.Stats.Bytes), name)
		counter(dpConns, float64(s.Stats.Conns), name)
		done := map[string]bool{}
		reals := append([]api.Real(nil), vs.Reals...)
		if vs.Sorry != nil {
			reals = append(reals, *vs.Sorry)
		}
		for _, r := range reals {
			ap, err := netipAddrPort(r.Address, r.Port)
			if err != nil || done[ap] {
				continue
			}
			done[ap] = true
			rs := realStats(s, ap)
			counter(dpRealPackets, float64(rs.Packets), name, ap)
			counter(dpRealBytes, float64(rs.Bytes), name, ap)
			counter(dpRealConns, float64(rs.Conns), name, ap)
		}
	}
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if seen[k] {
			continue
		}
		s := stats[k]
		counter(dpPackets, float64(s.Stats.Packets), k)
		counter(dpBytes, float64(s.Stats.Bytes), k)
		counter(dpConns, float64(s.Stats.Conns), k)
		for rk, rs := range s.Reals {
			counter(dpRealPackets, float64(rs.Packets), k, rk.String())
			counter(dpRealBytes, float64(rs.Bytes), k, rk.String())
			counter(dpRealConns, float64(rs.Conns), k, rk.String())
		}
	}
	if c.s.Verdicts != nil {
		for r, n := range c.s.Verdicts() {
			counter(xdpVerdicts, float64(n), r)
		}
	}
	if c.s.FlowEntries != nil {
		gauge(xdpFlows, float64(c.s.FlowEntries()))
	}
	if c.s.ChangedSlots != nil {
		for vs, n := range c.s.ChangedSlots() {
			gauge(xdpChanged, float64(n), vs)
		}
	}
	if c.s.RealFlows != nil {
		// Every real address of the config has a series from start-up.
		flows := c.s.RealFlows()
		addrs := map[netip.Addr]bool{}
		for _, vs := range st.VirtualServers {
			for _, r := range vs.Reals {
				if a, err := netip.ParseAddr(r.Address); err == nil {
					addrs[a] = true
				}
			}
		}
		for a := range flows {
			if a.IsValid() {
				addrs[a] = true
			}
		}
		for a := range addrs {
			gauge(xdpRealFlows, float64(flows[a]), a.String())
		}
	}
}
