// Package metrics exposes halod's state to Prometheus. The collector reads
// the daemons' status snapshots at scrape time, so nothing on the hot paths
// updates metrics.
package metrics

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// Sources are the snapshots the collector reads; any may be nil.
type Sources struct {
	VRRP      func() []vrrpd.Status
	Virtual   func() []vsmgr.VSStatus
	Dataplane dataplane.Backend
	// Reasons are the data plane's per-verdict packet counters (XDP).
	Reasons func() map[string]uint64
}

var (
	vrrpState       = prometheus.NewDesc("halo_vrrp_state", "1 for the state the VRRP instance is in.", []string{"instance", "state"}, nil)
	vrrpPrio        = prometheus.NewDesc("halo_vrrp_effective_priority", "Effective VRRP priority (base plus tracker weights).", []string{"instance"}, nil)
	vrrpTransitions = prometheus.NewDesc("halo_vrrp_transitions_total", "VRRP state transitions.", []string{"instance"}, nil)
	vrrpDrops       = prometheus.NewDesc("halo_vrrp_dropped_adverts_total", "Received adverts dropped, by reason.", []string{"instance", "reason"}, nil)
	realUp          = prometheus.NewDesc("halo_real_server_up", "1 when every checker of the real server passes.", []string{"virtual_server", "real_server"}, nil)
	realWeight      = prometheus.NewDesc("halo_real_server_weight", "Configured or dynamic weight of the real server.", []string{"virtual_server", "real_server"}, nil)
	quorum          = prometheus.NewDesc("halo_virtual_server_quorum_up", "1 while the virtual server has quorum.", []string{"virtual_server"}, nil)
	dpPackets       = prometheus.NewDesc("halo_dataplane_packets_total", "Packets the data plane forwarded, per virtual server.", []string{"virtual_server"}, nil)
	dpBytes         = prometheus.NewDesc("halo_dataplane_bytes_total", "Bytes the data plane forwarded, per virtual server.", []string{"virtual_server"}, nil)
	dpReasons       = prometheus.NewDesc("halo_xdp_packets_total", "Packets the XDP program handled, by verdict and reason.", []string{"reason"}, nil)
	dpRealPackets   = prometheus.NewDesc("halo_dataplane_real_packets_total", "Packets the data plane sent to each real server.", []string{"virtual_server", "real_server"}, nil)
)

var states = []string{"INIT", "BACKUP", "MASTER", "FAULT", "STOP"}

type collector struct{ s Sources }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{vrrpState, vrrpPrio, vrrpTransitions, vrrpDrops, realUp, realWeight, quorum, dpPackets, dpBytes, dpRealPackets, dpReasons} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	if c.s.VRRP != nil {
		for _, st := range c.s.VRRP() {
			for _, s := range states {
				ch <- prometheus.MustNewConstMetric(vrrpState, prometheus.GaugeValue, b2f(st.State == s), st.Name, s)
			}
			ch <- prometheus.MustNewConstMetric(vrrpPrio, prometheus.GaugeValue, float64(st.EffectivePriority), st.Name)
			ch <- prometheus.MustNewConstMetric(vrrpTransitions, prometheus.CounterValue, float64(st.Transitions), st.Name)
			for r, n := range st.Drops {
				ch <- prometheus.MustNewConstMetric(vrrpDrops, prometheus.CounterValue, float64(n), st.Name, r)
			}
		}
	}
	if c.s.Virtual != nil {
		for _, vs := range c.s.Virtual() {
			name := vs.Protocol + ":" + net.JoinHostPort(vs.Address, itoa(vs.Port))
			ch <- prometheus.MustNewConstMetric(quorum, prometheus.GaugeValue, b2f(vs.QuorumUp), name)
			for _, r := range vs.Reals {
				rn := net.JoinHostPort(r.Address, itoa(r.Port))
				ch <- prometheus.MustNewConstMetric(realUp, prometheus.GaugeValue, b2f(r.Up), name, rn)
				ch <- prometheus.MustNewConstMetric(realWeight, prometheus.GaugeValue, float64(r.Weight), name, rn)
			}
		}
	}
	if c.s.Reasons != nil {
		for r, n := range c.s.Reasons() {
			ch <- prometheus.MustNewConstMetric(dpReasons, prometheus.CounterValue, float64(n), r)
		}
	}
	if c.s.Dataplane != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		stats, err := c.s.Dataplane.Stats(ctx)
		if err != nil {
			return
		}
		for _, s := range stats {
			name := s.Key.String()
			ch <- prometheus.MustNewConstMetric(dpPackets, prometheus.CounterValue, float64(s.Stats.Packets), name)
			ch <- prometheus.MustNewConstMetric(dpBytes, prometheus.CounterValue, float64(s.Stats.Bytes), name)
			for rk, rs := range s.Reals {
				ch <- prometheus.MustNewConstMetric(dpRealPackets, prometheus.CounterValue, float64(rs.Packets), name, rk.String())
			}
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	if i == 0 {
		return "0"
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// Handler serves the metrics of s plus the Go runtime's.
func Handler(s Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Serve listens on addr and serves /metrics until ctx ends.
func Serve(ctx context.Context, addr string, s Sources) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(s))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return l.Addr(), nil
}
