package vsmgr

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/dataplane"
)

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
				case rs.up && rs.drained:
					// Drained by the operator: installed at weight 0 so
					// established flows finish, no new ones arrive.
					reals = append(reals, m.real(rs, 0))
				case rs.up:
					reals = append(reals, m.real(rs, uint32(rs.weight())))
				case rs.cfg.Inhibit:
					// Weight 0: no new flows, established ones drain.
					reals = append(reals, m.real(rs, 0))
				default:
					// Failed: marked Down rather than left out, so the
					// data plane tells a failed real (its established
					// flows finish, as IPVS lets them) from one removed
					// from the config (its flows re-resolve).
					r := m.real(rs, uint32(rs.weight()))
					r.Down = true
					reals = append(reals, r)
				}
			}
		} else {
			// Quorum lost: every real out, the sorry server in.
			reals = append(reals, m.real(vs.sorry, 1))
		}
		for _, k := range vs.keys {
			s := dataplane.Service{Key: k, Scheduler: vc.Scheduler, SchedFlags: vc.SchedFlags,
				Method: dataplane.Method(vc.Method), Persistence: vc.PersistenceTimeout.D(), Reals: reals,
				OnePacket: vc.OPS, Tunnel: tunnel(vc.Tunnel)}
			if g := vc.PersistenceGranularity; g != "" {
				s.PersistenceMask = maskBits(g)
			}
			out = append(out, s)
		}
	}
	return out
}

func (m *Manager) real(rs *rsState, w uint32) dataplane.Real {
	return dataplane.Real{Addr: rs.cfg.Addr, Port: uint16(rs.port), Weight: w, Method: dataplane.Method(rs.cfg.Method),
		Tunnel: tunnel(rs.cfg.Tunnel), UpperThreshold: uint32(max(rs.cfg.UThreshold, 0)),
		LowerThreshold: uint32(max(rs.cfg.LThreshold, 0))}
}

// tunnel carries keepalived's TUN options into the contract; "nocsum" is
// the contract's empty default.
func tunnel(t config.Tunnel) dataplane.Tunnel {
	c := t.TunChecksum
	if c == "nocsum" {
		c = ""
	}
	return dataplane.Tunnel{Type: t.TunType, Port: uint16(t.TunPort), Checksum: c}
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

func (m *Manager) markDirty() {
	m.dirty = true
	m.want++
	select {
	case m.applyCh <- struct{}{}:
	default:
	}
}

// Apply hands the current desired state to the backend once. Services
// the backend skipped (a *dataplane.SkippedError alone: the rest is
// applied) are a partial success: they are reported by Skipped and logged
// once per distinct reason, and retrying would only skip them again, so
// the set is not marked for retry; the next change or reload re-offers them.
func (m *Manager) Apply(ctx context.Context) error {
	m.mu.Lock()
	desired := m.desiredLocked()
	m.dirty = false
	gen := m.want
	m.mu.Unlock()
	err := m.backend.Apply(ctx, desired)
	skipped := map[string]string{}
	var sk *dataplane.SkippedError
	if errors.As(err, &sk) {
		for k, e := range sk.Skipped {
			skipped[k.String()] = e.Error()
		}
	}
	partial := err != nil && err == error(sk)
	m.mu.Lock()
	for k, reason := range skipped {
		if m.skipped[k] != reason {
			m.log.Warn("data plane skipped a service; the others are applied", "service", k, "reason", reason)
		}
	}
	for k := range m.skipped {
		if _, still := skipped[k]; !still {
			m.log.Info("data plane no longer skips the service", "service", k)
		}
	}
	m.skipped = skipped
	if partial {
		err = nil
	}
	if err == nil && gen > m.applied {
		m.applied = gen
		close(m.appliedCh)
		m.appliedCh = make(chan struct{})
	}
	m.lastErr = err
	if err != nil {
		m.dirty = true
	}
	m.mu.Unlock()
	return err
}

// Skipped lists the services the backend left out at the latest Apply
// (data-plane key, as dataplane.ServiceKey.String, to reason).
func (m *Manager) Skipped() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.skipped)
}

// LastApplyError is the error of the latest Apply (nil when it worked).
func (m *Manager) LastApplyError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

// waitApplied waits until the backend took the desired set of change gen
// (at most d): a real server's notify script runs once the data plane
// reflects its new state, as keepalived runs it after the IPVS update.
func (m *Manager) waitApplied(gen uint64, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		done, ch := m.applied >= gen, m.appliedCh
		m.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}
