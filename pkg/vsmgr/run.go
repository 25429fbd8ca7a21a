package vsmgr

import (
	"context"
	"net/netip"
	"time"

	"github.com/halo-lb/halo/pkg/check"
)

func (m *Manager) newJob(cs *checkState, ck check.Checker) *check.Job {
	cc := cs.cfg
	job := &check.Job{Checker: ck, Timeout: cc.ConnectTimeout.D(),
		Probe: check.NewProbe(cc.Retry, cc.DelayBeforeRetry.D(), cc.DelayLoop.D(), cc.Alpha, time.Now())}
	if cc.Type == "MISC_CHECK" {
		job.Timeout = cc.MiscTimeout.D()
	}
	job.OnChange = func(up bool, weight int, err error) { m.setCheck(cs, up, weight, err) }
	typ := cc.Type
	job.OnResult = func(r check.Result, d time.Duration) {
		if m.OnResult != nil {
			m.OnResult(typ, r.Err == nil, d)
		}
		if r.Err != nil && cc.LogAllFailures {
			// keepalived's log_all_failures: every failed attempt, not
			// only the ones that change the real's state.
			m.log.Warn("check failed", "virtual_server", cs.rs.vs.name, "real_server", cs.rs.name,
				"checker", typ, "err", r.Err)
		}
	}
	return job
}

// startJob runs a check under its own context, so a reload can stop it
// alone. Called with m.mu held.
func (m *Manager) startJob(cs *checkState) {
	ctx, cancel := context.WithCancel(m.ctx)
	cs.cancel = cancel
	if cs.rs.vs.suspended {
		cs.job.Pause(true)
	}
	m.sched.Start(ctx, cs.job, cs.cfg.Warmup.D())
}

func (cs *checkState) retire() {
	cs.retired = true
	if cs.cancel != nil {
		cs.cancel()
	}
}

// Start launches a checker job for every checker of every real server and
// keeps the backend in line until ctx ends. Failed applies are retried.
func (m *Manager) Start(ctx context.Context, sched *check.Scheduler) error {
	m.mu.Lock()
	m.ctx, m.sched = ctx, sched
	for _, vs := range m.vss {
		for _, rs := range vs.reals {
			for _, cs := range rs.checks {
				m.startJob(cs)
			}
		}
	}
	m.mu.Unlock()
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
						c.job.Pause(!master)
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

// Close stops the checks, waits for the notify queues and releases them,
// without omega's notifiers.
func (m *Manager) Close() {
	m.mu.Lock()
	vss := m.vss
	for _, vs := range vss {
		for _, rs := range vs.reals {
			for _, cs := range rs.checks {
				cs.retire()
			}
		}
	}
	m.mu.Unlock()
	for _, vs := range vss {
		vs.queue.Drain(10 * time.Second)
		vs.queue.Close()
	}
}

// Drain waits until every queued notify script has run (tests).
func (m *Manager) Drain(d time.Duration) {
	m.mu.Lock()
	vss := m.vss
	m.mu.Unlock()
	for _, vs := range vss {
		vs.queue.Drain(d)
	}
}
