package vsmgr

import (
	"fmt"
	"strings"
	"time"
)

// RealStatus is one real server as the control socket reports it.
type RealStatus struct {
	Address          string        `json:"address"`
	Port             int           `json:"port"`
	Weight           int           `json:"weight"`
	ConfiguredWeight int           `json:"configured_weight"`
	Up               bool          `json:"up"`
	Drained          bool          `json:"drained,omitempty"`
	LastError        string        `json:"last_error"`
	Checkers         []CheckStatus `json:"checkers,omitempty"`
}

// CheckStatus is one checker of a real server.
type CheckStatus struct {
	Type      string        `json:"type"`
	Up        bool          `json:"up"`
	LastError string        `json:"last_error,omitempty"`
	Attempts  uint64        `json:"attempts"`
	Latency   time.Duration `json:"latency_ns"`
	LastCheck time.Time     `json:"last_check,omitzero"`
}

// VSStatus is one virtual server.
type VSStatus struct {
	ID         string       `json:"id"`
	Address    string       `json:"address"`
	Port       int          `json:"port"`
	Protocol   string       `json:"protocol"`
	Scheduler  string       `json:"scheduler"`
	Method     string       `json:"method"`
	Quorum     int          `json:"quorum"`
	LiveWeight int          `json:"live_weight"`
	QuorumUp   bool         `json:"quorum_up"`
	Suspended  bool         `json:"suspended,omitempty"`
	Reals      []RealStatus `json:"reals"`
	Sorry      *RealStatus  `json:"sorry_server,omitempty"`
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
		st := VSStatus{ID: vs.id, Address: addr, Port: vc.Port, Protocol: strings.ToLower(vc.Protocol), Scheduler: vc.Scheduler,
			Method: vc.Method, Quorum: vc.Quorum, LiveWeight: vs.liveWeight(), QuorumUp: vs.quorumUp, Suspended: vs.suspended}
		for _, rs := range vs.reals {
			r := RealStatus{Address: rs.cfg.Addr.String(), Port: rs.port, Weight: rs.weight(), ConfiguredWeight: rs.cfg.Weight,
				Up: rs.up, Drained: rs.drained}
			if rs.drained {
				r.Weight = 0
			}
			for _, c := range rs.checks {
				js := c.job.Status()
				r.Checkers = append(r.Checkers, CheckStatus{Type: c.cfg.Type, Up: c.up, LastError: js.Err,
					Attempts: js.Attempts, Latency: js.Latency, LastCheck: js.At})
				if c.err != "" {
					r.LastError = c.err
				}
				if r.LastError == "" && !c.up {
					r.LastError = js.Err
				}
			}
			st.Reals = append(st.Reals, r)
		}
		if vs.sorry != nil {
			st.Sorry = &RealStatus{Address: vs.sorry.cfg.Addr.String(), Port: vs.sorry.port, Weight: 1, ConfiguredWeight: 1, Up: !vs.quorumUp}
		}
		out = append(out, st)
	}
	return out
}
