package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/prometheus/client_golang/prometheus"
)

// PeerStatus is one BGP session as status and metrics report it. It never
// carries the password.
type PeerStatus struct {
	Address     string    `json:"address"`
	RemoteAS    uint32    `json:"remote_as"`
	State       string    `json:"state"` // idle, connect, active, opensent, openconfirm, established
	Up          bool      `json:"up"`
	Since       time.Time `json:"since,omitzero"`
	HoldTime    uint64    `json:"hold_time"` // negotiated, seconds
	UpdatesSent uint64    `json:"updates_sent"`
	MD5         bool      `json:"md5,omitempty"` // a password is configured (never the password)
}

// Status is the speaker's snapshot for `haloctl status` and metrics.
type Status struct {
	LocalAS     uint32       `json:"local_as"`
	RouterID    string       `json:"router_id"`
	Drained     bool         `json:"drained,omitempty"`
	Peers       []PeerStatus `json:"peers"`
	Announced   []string     `json:"announced"`
	UpdatesSent uint64       `json:"updates_sent_total"`
}

// statusState keeps halo_bgp_updates_sent_total monotonic across session
// resets, which restart GoBGP's per-peer counters.
type statusState struct {
	mu   sync.Mutex
	base map[string]uint64
	last map[string]uint64
}

func (st *statusState) total(cur map[string]uint64) uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, v := range cur {
		if v < st.last[k] {
			st.base[k] += st.last[k]
		}
		st.last[k] = v
	}
	var sum uint64
	for k := range st.last {
		sum += st.base[k] + st.last[k]
	}
	return sum
}

// Status reads the sessions from GoBGP and the announced set.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	started := s.started
	out := Status{LocalAS: s.cfg.LocalAS, RouterID: s.cfg.RouterID.String(), Drained: s.drained}
	var ann []netip.Prefix
	for p := range s.announced {
		ann = append(ann, p)
	}
	s.mu.Unlock()
	slices.SortFunc(ann, comparePrefix)
	for _, p := range ann {
		out.Announced = append(out.Announced, p.String())
	}
	md5 := map[string]bool{}
	for _, n := range s.cfg.Neighbors {
		md5[n.Addr.String()] = n.Password != ""
	}
	sent := map[string]uint64{}
	if started {
		_ = s.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.State == nil || p.Conf == nil {
				return
			}
			ps := PeerStatus{Address: p.Conf.NeighborAddress, RemoteAS: p.Conf.PeerAsn, MD5: md5[p.Conf.NeighborAddress],
				State: sessionState(p.State.SessionState)}
			ps.Up = p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
			if m := p.State.Messages; m != nil && m.Sent != nil {
				ps.UpdatesSent = m.Sent.Update
				sent[ps.Address] = m.Sent.Update
			}
			if t := p.Timers; t != nil && t.State != nil {
				ps.HoldTime = t.State.NegotiatedHoldTime
				if ps.Up && t.State.Uptime != nil {
					ps.Since = t.State.Uptime.AsTime()
				}
			}
			out.Peers = append(out.Peers, ps)
		})
	}
	slices.SortFunc(out.Peers, func(a, b PeerStatus) int { return strings.Compare(a.Address, b.Address) })
	out.UpdatesSent = s.stat.total(sent)
	return out
}

func sessionState(st api.PeerState_SessionState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "SESSION_STATE_"))
}

var (
	descSessionUp = prometheus.NewDesc("halo_bgp_session_up", "1 while the BGP session to the peer is established.",
		[]string{"peer"}, nil)
	descAnnounced = prometheus.NewDesc("halo_bgp_announced",
		"1 while the prefix is announced to the peers, 0 once withdrawn.", []string{"prefix"}, nil)
	descUpdates = prometheus.NewDesc("halo_bgp_updates_sent_total", "BGP UPDATE messages sent to all peers.", nil, nil)
)

// Collector returns a Prometheus collector that reads Status at scrape time.
func (s *Speaker) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Speaker }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessionUp
	ch <- descAnnounced
	ch <- descUpdates
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Status()
	for _, p := range st.Peers {
		ch <- prometheus.MustNewConstMetric(descSessionUp, prometheus.GaugeValue, b2f(p.Up), p.Address)
	}
	c.s.mu.Lock()
	known := map[netip.Prefix]bool{}
	for p := range c.s.known {
		known[p] = c.s.announced[p]
	}
	c.s.mu.Unlock()
	for p, on := range known {
		ch <- prometheus.MustNewConstMetric(descAnnounced, prometheus.GaugeValue, b2f(on), p.String())
	}
	ch <- prometheus.MustNewConstMetric(descUpdates, prometheus.CounterValue, float64(st.UpdatesSent))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// redactHandler masks the neighbors' passwords wherever they would appear in
// a log record: GoBGP logs peer configurations in its own words, and a
// password must never reach a log (docs/bgp.md#secrets).
type redactHandler struct {
	h       slog.Handler
	secrets []string
}

const mask = "********"

func (r *redactHandler) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, mask)
	}
	return s
}

func (r *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = r.attr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString:
		return slog.String(a.Key, r.redact(v.String()))
	case slog.KindAny:
		return slog.String(a.Key, r.redact(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (r *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	if len(r.secrets) == 0 {
		return r.h.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, r.redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = r.attr(a)
	}
	return &redactHandler{h: r.h.WithAttrs(red), secrets: r.secrets}
}

func (r *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{h: r.h.WithGroup(name), secrets: r.secrets}
}

// minLevel drops records below min whatever the wrapped handler accepts.
type minLevel struct {
	h   slog.Handler
	min slog.Leveler
}

func (m *minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min.Level() && m.h.Enabled(ctx, l)
}
func (m *minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m *minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return &minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m *minLevel) WithGroup(n string) slog.Handler {
	return &minLevel{h: m.h.WithGroup(n), min: m.min}
}
