package vsmgr

import (
	"fmt"
	"strings"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

// SetCheck records a checker verdict for real server r of virtual server v
// (indexes into the running config) and applies the consequences.
func (m *Manager) SetCheck(v, r, c int, up bool, weight int, err error) {
	m.mu.Lock()
	cs := m.vss[v].reals[r].checks[c]
	m.mu.Unlock()
	m.setCheck(cs, up, weight, err)
}

func (m *Manager) setCheck(cs *checkState, up bool, weight int, err error) {
	m.mu.Lock()
	if cs.retired {
		m.mu.Unlock()
		return
	}
	// cs.rs is read under the lock: a reload may move the check to the
	// real server of the new config.
	rs := cs.rs
	vs := rs.vs
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
		// The scripts and FIFO lines run once the data plane has the
		// change markDirty below makes (or after a second without).
		gen := m.want + 1
		vs.queue.Func(func() { m.waitApplied(gen, time.Second) })
		vs.queue.Script(scr)
		m.lvsFIFO(vs, fmt.Sprintf("RS %s %s %s", rs.name, vs.name, state))
	}
	m.updateQuorum(vs)
	m.markDirty()
	m.mu.Unlock()
	m.changed()
}

func (m *Manager) changed() {
	if m.OnChange != nil {
		m.OnChange()
	}
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
