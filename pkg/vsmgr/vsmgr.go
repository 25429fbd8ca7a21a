// Package vsmgr is the virtual-server manager: from the config and the
// health checkers' verdicts it computes the desired services and real
// servers and hands them to any dataplane.Backend. It implements
// keepalived's checker-side semantics (keepalived-semantics.md §9):
// weights, inhibit_on_failure, quorum with hysteresis and its scripts, the
// sorry server, alpha/omega, notify_up/notify_down, lvs_notify_fifo lines
// and ha_suspend.
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
	cfg     *config.Config
	backend dataplane.Backend
	runner  *script.Runner
	log     *slog.Logger

	mu      sync.Mutex
	vss     []*vsState
	dirty   bool
	applyCh chan struct{}
	lastErr error
}

type vsState struct {
	cfg       *config.VirtualServer
	keys      []dataplane.ServiceKey
	reals     []*rsState
	sorry     *rsState
	quorumUp  bool
	queue     *script.Queue
	suspended bool
	name      string // "[ip]:tcp:port" for FIFO lines
}

type rsState struct {
	cfg    *config.RealServer
	port   int
	checks []*checkState
	up     bool
	name   string
}

type checkState struct {
	up     bool
	weight int // misc_dynamic; -1 when none
	err    string
	job    *check.Job
}

// New prepares the manager; Start begins checking and applying.
func New(cfg *config.Config, backend dataplane.Backend, runner *script.Runner, log *slog.Logger) (*Manager, error) {
	m := &Manager{cfg: cfg, backend: backend, runner: runner, log: log, applyCh: make(chan struct{}, 1)}
	groups := map[string]*config.VSGroup{}
	for _, g := range cfg.VSGroups {
		groups[g.Name] = g
	}
	for _, vc := range cfg.VirtualServers {
		vs := &vsState{cfg: vc}
		keys, err := serviceKeys(vc, groups)
		if err != nil {
			return nil, err
		}
		vs.keys = keys
		vs.name = fifoName(vc.Addr, vc.Protocol, vc.Port, vc.FWMark)
		for _, rc := range vc.Reals {
			rs := &rsState{cfg: rc, port: rc.Port}
			if rs.port == 0 {
				rs.port = vc.Port
			}
			rs.name = fifoName(rc.Addr, vc.Protocol, rs.port, 0)
			for _, cc := range rc.Checkers {
				// alpha: a checked server starts down until it passes.
				rs.checks = append(rs.checks, &checkState{up: !cc.Alpha, weight: -1})
			}
			rs.up = rs.allUp()
			vs.reals = append(vs.reals, rs)
		}
		if ss := vc.SorryServer; ss != nil {
			vs.sorry = &rsState{cfg: ss, port: ss.Port, up: true}
			if vs.sorry.port == 0 {
				vs.sorry.port = vc.Port
			}
		}
		// Quorum starts from the initial verdicts, without hysteresis.
		vs.quorumUp = vs.liveWeight() >= vc.Quorum
		vs.queue = script.NewQueue(runner, log.With("virtual_server", vs.name), 0)
		m.vss = append(m.vss, vs)
	}
	return m, nil
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
		if rs.up {
			sum += rs.weight()
		}
	}
	return sum
}

// Desired computes the services to install now.
func (m *Manager) Desired() []dataplane.Service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.desiredLocked()
}

func (m *Manager) desiredLocked() []dataplane.Service {
	var out []dataplane.Service
	for _, vs := range m.vss {
		vc := vs.cfg
		var reals []dataplane.Real
		if vs.quorumUp || vs.sorry == nil {
			for _, rs := range vs.reals {
				switch {
				case rs.up:
					reals = append(reals, m.real(vs, rs, uint32(rs.weight())))
				case rs.cfg.Inhibit:
					// Weight 0: no new flows, established ones drain.
					reals = append(reals, m.real(vs, rs, 0))
				}
			}
		} else {
			// Quorum lost: every real out, the sorry server in.
			reals = append(reals, m.real(vs, vs.sorry, 1))
		}
		for _, k := range vs.keys {
			s := dataplane.Service{Key: k, Scheduler: vc.Scheduler, SchedFlags: vc.SchedFlags,
				Method: dataplane.Method(vc.Method), Persistence: vc.PersistenceTimeout.D(), Reals: reals}
			if g := vc.PersistenceGranularity; g != "" {
				s.PersistenceMask = maskBits(g)
			}
			out = append(out, s)
		}
	}
	return out
}

func (m *Manager) real(vs *vsState, rs *rsState, w uint32) dataplane.Real {
	return dataplane.Real{Addr: rs.cfg.Addr, Port: uint16(rs.port), Weight: w, Method: dataplane.Method(rs.cfg.Method)}
}

func maskBits(g string) int {
	if a, err := netip.ParseAddr(g); err == nil {
		b := a.AsSlice()
		n := 0
		for _, x := range b {
			for i := 7; i >= 0 && x&(1<<i) != 0; i-- {
				n++
			}
		}
		return n
	}
	var n int
	fmt.Sscanf(g, "%d", &n)
	return n
}

// SetCheck records a checker verdict for real server r of virtual server v
// (indexes into the config) and applies the consequences.
func (m *Manager) SetCheck(v, r, c int, up bool, weight int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.vss[v]
	rs := vs.reals[r]
	cs := rs.checks[c]
	cs.up, cs.weight = up, weight
	cs.err = ""
	if err != nil {
		cs.err = err.Error()
	}
	wasUp := rs.up
	rs.up = rs.allUp()
	if rs.up != wasUp {
		state, scr := "DOWN", rs.cfg.NotifyDown
		if rs.up {
			state, scr = "UP", rs.cfg.NotifyUp
		}
		m.log.Info("real server "+strings.ToLower(state), "virtual_server", vs.name, "real_server", rs.name, "reason", cs.err)
		vs.queue.Script(scr)
		m.lvsFIFO(vs, fmt.Sprintf("RS %s %s %s", rs.name, vs.name, state))
	}
	m.updateQuorum(vs)
	m.markDirty()
}

// updateQuorum moves the quorum state with hysteresis and fires the
// scripts and FIFO line.
func (m *Manager) updateQuorum(vs *vsState) {
	live, q, h := vs.liveWeight(), vs.cfg.Quorum, vs.cfg.Hysteresis
	switch {
	case vs.quorumUp && live < q-h:
		vs.quorumUp = false
		m.log.Warn("quorum lost", "virtual_server", vs.name, "live_weight", live, "quorum", q)
		vs.queue.Script(vs.cfg.QuorumDown)
		m.lvsFIFO(vs, fmt.Sprintf("VS %s DOWN", vs.name))
	case !vs.quorumUp && live >= q+h:
		vs.quorumUp = true
		m.log.Info("quorum gained", "virtual_server", vs.name, "live_weight", live, "quorum", q)
		vs.queue.Script(vs.cfg.QuorumUp)
		m.lvsFIFO(vs, fmt.Sprintf("VS %s UP", vs.name))
	}
}

func (m *Manager) lvsFIFO(vs *vsState, line string) {
	g := &m.cfg.Global
	for _, f := range []*config.FIFO{g.NotifyFIFO, g.LVSNotifyFIFO} {
		if f == nil || f.Path == "" {
			continue
		}
		path := f.Path
		vs.queue.Func(func() { script.WriteFIFO(path, line, m.log) })
	}
}

func (m *Manager) markDirty() {
	m.dirty = true
	select {
	case m.applyCh <- struct{}{}:
	default:
	}
}

// Apply hands the current desired state to the backend once.
func (m *Manager) Apply(ctx context.Context) error {
	m.mu.Lock()
	desired := m.desiredLocked()
	m.dirty = false
	m.mu.Unlock()
	err := m.backend.Apply(ctx, desired)
	m.mu.Lock()
	m.lastErr = err
	if err != nil {
		m.dirty = true
	}
	m.mu.Unlock()
	return err
}

// Start launches a checker job for every checker of every real server and
// keeps the backend in line until ctx ends. Failed applies are retried.
func (m *Manager) Start(ctx context.Context, sched *check.Scheduler) error {
	for vi, vs := range m.vss {
		for ri, rs := range vs.reals {
			for ci, cc := range rs.cfg.Checkers {
				ck, err := check.New(cc, rs.cfg, m.runner)
				if err != nil {
					return fmt.Errorf("%s %s: %w", vs.name, rs.name, err)
				}
				vi, ri, ci := vi, ri, ci
				job := &check.Job{Checker: ck, Timeout: cc.ConnectTimeout.D(),
					Probe: check.NewProbe(cc.Retry, cc.DelayBeforeRetry.D(), cc.DelayLoop.D(), cc.Alpha, time.Now())}
				if cc.Type == "MISC_CHECK" {
					job.Timeout = cc.MiscTimeout.D()
				}
				job.OnChange = func(up bool, weight int, err error) { m.SetCheck(vi, ri, ci, up, weight, err) }
				rs.checks[ci].job = job
				sched.Start(ctx, job, cc.Warmup.D())
			}
		}
	}
	if err := m.Apply(ctx); err != nil {
		m.log.Error("data plane apply", "err", err)
	}
	go func() {
		retry := time.NewTicker(5 * time.Second)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.applyCh:
			case <-retry.C:
				m.mu.Lock()
				d := m.dirty
				m.mu.Unlock()
				if !d {
					continue
				}
			}
			if err := m.Apply(ctx); err != nil {
				m.log.Error("data plane apply; will retry", "err", err)
			}
		}
	}()
	return nil
}

// SetMaster tells the manager whether this node is VRRP master for addr;
// virtual servers with ha_suspend on that address pause their checks while
// it is not.
func (m *Manager) SetMaster(addrs []netip.Addr, master bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, vs := range m.vss {
		if !vs.cfg.HASuspend {
			continue
		}
		for _, a := range addrs {
			if a == vs.cfg.Addr {
				vs.suspended = !master
				for _, rs := range vs.reals {
					for _, c := range rs.checks {
						if c.job != nil {
							c.job.Pause(!master)
						}
					}
				}
				m.log.Info("ha_suspend", "virtual_server", vs.name, "checks_paused", !master)
			}
		}
	}
}

// Stop runs omega's notifiers (quorum_down, notify_down for servers that
// were up) and waits for the script queues.
func (m *Manager) Stop() {
	m.mu.Lock()
	for _, vs := range m.vss {
		if vs.cfg.Omega {
			for _, rs := range vs.reals {
				if rs.up {
					vs.queue.Script(rs.cfg.NotifyDown)
				}
			}
			if vs.quorumUp {
				vs.queue.Script(vs.cfg.QuorumDown)
			}
		}
	}
	m.mu.Unlock()
	m.Close()
}

// Close waits for the notify queues and releases them, without omega's
// notifiers: a reload replaces the manager this way.
func (m *Manager) Close() {
	for _, vs := range m.vss {
		vs.queue.Drain(10 * time.Second)
		vs.queue.Close()
	}
}

// Drain waits until every queued notify script has run (tests).
func (m *Manager) Drain(d time.Duration) {
	for _, vs := range m.vss {
		vs.queue.Drain(d)
	}
}

// RealStatus and VSStatus are what the control socket reports.
type RealStatus struct {
	Address   string `json:"address"`
	Port      int    `json:"port"`
	Weight    int    `json:"weight"`
	Up        bool   `json:"up"`
	LastError string `json:"last_error"`
}

// VSStatus is one virtual server.
type VSStatus struct {
	Address   string       `json:"address"`
	Port      int          `json:"port"`
	Protocol  string       `json:"protocol"`
	Scheduler string       `json:"scheduler"`
	Method    string       `json:"method"`
	QuorumUp  bool         `json:"quorum_up"`
	Suspended bool         `json:"suspended,omitempty"`
	Reals     []RealStatus `json:"reals"`
	Sorry     *RealStatus  `json:"sorry_server,omitempty"`
}

// Status reports every virtual server and real server.
func (m *Manager) Status() []VSStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []VSStatus
	for _, vs := range m.vss {
		vc := vs.cfg
		addr := vc.Addr.String()
		switch {
		case vc.FWMark != 0:
			addr = fmt.Sprintf("fwmark:%d", vc.FWMark)
		case vc.Group != "":
			addr = "group:" + vc.Group
		}
		st := VSStatus{Address: addr, Port: vc.Port, Protocol: strings.ToLower(vc.Protocol), Scheduler: vc.Scheduler,
			Method: vc.Method, QuorumUp: vs.quorumUp, Suspended: vs.suspended}
		for _, rs := range vs.reals {
			r := RealStatus{Address: rs.cfg.Addr.String(), Port: rs.port, Weight: rs.weight(), Up: rs.up}
			for _, c := range rs.checks {
				if c.err != "" {
					r.LastError = c.err
				}
				if c.job != nil && r.LastError == "" && !c.up {
					r.LastError = c.job.Status().Err
				}
			}
			st.Reals = append(st.Reals, r)
		}
		if vs.sorry != nil {
			st.Sorry = &RealStatus{Address: vs.sorry.cfg.Addr.String(), Port: vs.sorry.port, Weight: 1, Up: !vs.quorumUp}
		}
		out = append(out, st)
	}
	return out
}
