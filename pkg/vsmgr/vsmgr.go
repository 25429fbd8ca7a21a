// Package vsmgr is the virtual-server manager: from the config and the
// health checkers' verdicts it computes the desired services and real
// servers and hands them to any dataplane.Backend. It implements
// keepalived's checker-side semantics (docs/keepalived.md#virtual-servers):
// weights, inhibit_on_failure, quorum with hysteresis and its scripts, the
// sorry server, alpha/omega, notify_up/notify_down, lvs_notify_fifo lines
// and ha_suspend; and, beyond keepalived, a reload that keeps the verdicts
// and schedules of unchanged checkers (reload.go) and operator drains.
package vsmgr

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/halo-lb/halo/pkg/check"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/script"
)

// Manager owns the virtual servers of one config.
type Manager struct {
	backend dataplane.Backend
	runner  *script.Runner
	log     *slog.Logger

	// OnResult, when set before Start, sees every check attempt (metrics).
	OnResult func(checker string, ok bool, latency time.Duration)
	// OnChange, when set before Start, is called (without locks held, from
	// a checker's goroutine or Reload) after a quorum or real-server verdict
	// changed; the BGP announcer's feed uses it.
	OnChange func()

	mu      sync.Mutex
	cfg     *config.Config
	vss     []*vsState
	dirty   bool
	applyCh chan struct{}
	// want counts the changes of the desired set, applied the last one
	// the backend took; appliedCh is closed (and replaced) whenever
	// applied moves, for notify scripts waiting on it (waitApplied).
	want, applied uint64
	appliedCh     chan struct{}
	lastErr       error
	skipped       map[string]string // service key -> why the backend skipped it
	ctx           context.Context   // set by Start; jobs run under it
	sched         *check.Scheduler

	notifyTimeout time.Duration // bounds each notify script; 0: none
}

type vsState struct {
	cfg       *config.VirtualServer
	id        string // identity across reloads: see vsID
	keys      []dataplane.ServiceKey
	reals     []*rsState
	sorry     *rsState
	quorumUp  bool
	queue     *script.Queue
	suspended bool
	name      string // "[ip]:tcp:port" for FIFO lines
}

type rsState struct {
	vs      *vsState
	cfg     *config.RealServer
	port    int
	checks  []*checkState
	up      bool
	drained bool // haloctl real disable: weight 0 until enabled again
	name    string
}

type checkState struct {
	rs      *rsState
	cfg     *config.Checker
	up      bool
	weight  int // misc_dynamic; -1 when none
	err     string
	job     *check.Job
	cancel  context.CancelFunc // nil until the job runs
	retired bool               // removed by a reload; late verdicts are ignored
}

// New prepares the manager; Start begins checking and applying. Every
// checker is built here, so a config the checkers reject fails now.
func New(cfg *config.Config, backend dataplane.Backend, runner *script.Runner, log *slog.Logger) (*Manager, error) {
	m := &Manager{cfg: cfg, backend: backend, runner: runner, log: log, applyCh: make(chan struct{}, 1), appliedCh: make(chan struct{})}
	vss, err := m.build(cfg)
	if err != nil {
		return nil, err
	}
	for _, vs := range vss {
		vs.queue = m.newQueue(vs)
	}
	m.vss = vss
	return m, nil
}

func (m *Manager) newQueue(vs *vsState) *script.Queue {
	return script.NewQueue(m.runner, m.log.With("virtual_server", vs.name), m.notifyTimeout)
}

// SetNotifyTimeout bounds each notify script (notify_up/down, quorum_up/
// down), as --notify-timeout does VRRP's: a hung script must not hold
// back the ones queued after it forever. Call it before Start.
func (m *Manager) SetNotifyTimeout(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notifyTimeout = d
	for _, vs := range m.vss {
		vs.queue.Close() // idle: nothing runs before Start
		vs.queue = m.newQueue(vs)
	}
}

// build turns the config into fresh state (no queues, no running jobs).
func (m *Manager) build(cfg *config.Config) ([]*vsState, error) {
	groups := map[string]*config.VSGroup{}
	for _, g := range cfg.VSGroups {
		groups[g.Name] = g
	}
	var out []*vsState
	seen := map[string]bool{}
	for _, vc := range cfg.VirtualServers {
		vs := &vsState{cfg: vc, id: vsID(vc)}
		if seen[vs.id] {
			return nil, fmt.Errorf("virtual_server %s is defined twice", vs.id)
		}
		seen[vs.id] = true
		keys, err := serviceKeys(vc, groups)
		if err != nil {
			return nil, err
		}
		vs.keys = keys
		vs.name = fifoName(vc.Addr, vc.Protocol, vc.Port, vc.FWMark)
		for _, rc := range vc.Reals {
			rs := &rsState{vs: vs, cfg: rc, port: rc.Port}
			if rs.port == 0 {
				rs.port = vc.Port
			}
			rs.name = fifoName(rc.Addr, vc.Protocol, rs.port, 0)
			for _, cc := range rc.Checkers {
				ck, err := check.New(cc, rc, m.runner)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", vs.name, rs.name, err)
				}
				// alpha: a checked server starts down until it passes.
				cs := &checkState{rs: rs, cfg: cc, up: !cc.Alpha, weight: -1}
				cs.job = m.newJob(cs, ck)
				rs.checks = append(rs.checks, cs)
			}
			rs.up = rs.allUp()
			vs.reals = append(vs.reals, rs)
		}
		if ss := vc.SorryServer; ss != nil {
			vs.sorry = &rsState{vs: vs, cfg: ss, port: ss.Port, up: true}
			if vs.sorry.port == 0 {
				vs.sorry.port = vc.Port
			}
		}
		// Quorum starts from the initial verdicts, without hysteresis.
		vs.quorumUp = vs.liveWeight() >= vc.Quorum
		out = append(out, vs)
	}
	return out, nil
}

// vsID names a virtual server the way haloctl does: ADDR:PORT/proto,
// fwmark:N or group:NAME.
func vsID(vc *config.VirtualServer) string {
	switch {
	case vc.FWMark != 0:
		return fmt.Sprintf("fwmark:%d", vc.FWMark)
	case vc.Group != "":
		return "group:" + vc.Group
	}
	return netip.AddrPortFrom(vc.Addr, uint16(vc.Port)).String() + "/" + strings.ToLower(vc.Protocol)
}

func fifoName(a netip.Addr, proto string, port int, fwmark uint32) string {
	if fwmark != 0 {
		return fmt.Sprintf("FWM %d", fwmark)
	}
	return fmt.Sprintf("[%s]:%s:%d", a, strings.ToLower(proto), port)
}

func protocol(p string) dataplane.Protocol {
	switch strings.ToUpper(p) {
	case "UDP":
		return dataplane.UDP
	case "SCTP":
		return dataplane.SCTP
	}
	return dataplane.TCP
}

// serviceKeys expands a virtual_server (and its group) into service keys.
func serviceKeys(vc *config.VirtualServer, groups map[string]*config.VSGroup) ([]dataplane.ServiceKey, error) {
	proto := protocol(vc.Protocol)
	switch {
	case vc.FWMark != 0:
		return []dataplane.ServiceKey{{FWMark: vc.FWMark}}, nil
	case vc.Group != "":
		g := groups[vc.Group]
		if g == nil {
			return nil, fmt.Errorf("virtual_server group %s: no such group", vc.Group)
		}
		var keys []dataplane.ServiceKey
		for _, e := range g.Entries {
			if e.FWMark != 0 {
				keys = append(keys, dataplane.ServiceKey{FWMark: e.FWMark})
				continue
			}
			port := e.Port
			if port == 0 {
				port = vc.Port
			}
			n := 0
			for a := e.First; a.IsValid() && !e.Last.Less(a); a = a.Next() {
				if n++; n > 65536 {
					return nil, fmt.Errorf("virtual_server_group %s: range from %s is too large", g.Name, e.First)
				}
				keys = append(keys, dataplane.ServiceKey{Addr: a, Port: uint16(port), Proto: proto})
			}
		}
		return keys, nil
	}
	return []dataplane.ServiceKey{{Addr: vc.Addr, Port: uint16(vc.Port), Proto: proto}}, nil
}

func (rs *rsState) allUp() bool {
	for _, c := range rs.checks {
		if !c.up {
			return false
		}
	}
	return true
}

// weight is the configured weight, or the latest misc_dynamic one.
func (rs *rsState) weight() int {
	w := rs.cfg.Weight
	for _, c := range rs.checks {
		if c.weight >= 0 {
			w = c.weight
		}
	}
	return w
}

func (vs *vsState) liveWeight() int {
	sum := 0
	for _, rs := range vs.reals {
		if rs.up && !rs.drained {
			sum += rs.weight()
		}
	}
	return sum
}
