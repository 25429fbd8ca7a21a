package vsmgr

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

// ReloadSummary says what a reload changed, for the log.
type ReloadSummary struct {
	AddedVS, RemovedVS, KeptVS          int
	AddedReals, RemovedReals, KeptReals int
	RestartedChecks, KeptChecks         int
}

func (s ReloadSummary) String() string {
	return fmt.Sprintf("virtual servers +%d -%d =%d, reals +%d -%d =%d, checks restarted %d kept %d",
		s.AddedVS, s.RemovedVS, s.KeptVS, s.AddedReals, s.RemovedReals, s.KeptReals, s.RestartedChecks, s.KeptChecks)
}

// Reload moves the running manager to cfg and applies only the
// difference. Virtual servers are matched by address/port/protocol (or
// fwmark, or group), reals by address and port, checkers by their whole
// settings: a checker whose settings did not change keeps its job, and so
// its verdict, its retry count and its schedule — a down real stays down.
// Changed weights and new reals take effect at once; new checkers start;
// removed ones stop. Drains survive. If cfg is refused (a checker or a
// group it cannot build), nothing changes.
func (m *Manager) Reload(cfg *config.Config) (ReloadSummary, error) {
	var sum ReloadSummary
	next, err := m.build(cfg)
	if err != nil {
		return sum, err
	}
	m.mu.Lock()
	old := map[string]*vsState{}
	for _, vs := range m.vss {
		old[vs.id] = vs
	}
	var start []*checkState
	for _, nvs := range next {
		ovs := old[nvs.id]
		if ovs == nil {
			sum.AddedVS++
			nvs.queue = m.newQueue(nvs)
			for _, rs := range nvs.reals {
				sum.AddedReals++
				start = append(start, rs.checks...)
			}
			continue
		}
		delete(old, nvs.id)
		sum.KeptVS++
		nvs.queue, nvs.suspended = ovs.queue, ovs.suspended
		oldReals := map[string]*rsState{}
		for _, rs := range ovs.reals {
			oldReals[rs.name] = rs
		}
		for _, nrs := range nvs.reals {
			ors := oldReals[nrs.name]
			if ors == nil {
				sum.AddedReals++
				start = append(start, nrs.checks...)
				continue
			}
			delete(oldReals, nrs.name)
			sum.KeptReals++
			nrs.drained = ors.drained
			if ors.cfg.Weight != nrs.cfg.Weight {
				m.log.Info("reload: weight changed", "virtual_server", nvs.name, "real_server", nrs.name,
					"from", ors.cfg.Weight, "to", nrs.cfg.Weight)
			}
			kept, restarted := adoptChecks(nrs, ors)
			sum.KeptChecks += kept
			sum.RestartedChecks += len(restarted)
			start = append(start, restarted...)
			nrs.up = nrs.allUp()
		}
		for _, ors := range oldReals {
			sum.RemovedReals++
			for _, cs := range ors.checks {
				cs.retire()
			}
		}
		// Quorum continues from where it was; the hysteresis rule moves it
		// (with its scripts) only when the new live weight says so.
		nvs.quorumUp = ovs.quorumUp
		m.updateQuorum(nvs)
	}
	var gone []*vsState
	for _, ovs := range old {
		sum.RemovedVS++
		gone = append(gone, ovs)
		for _, rs := range ovs.reals {
			sum.RemovedReals++
			for _, cs := range rs.checks {
				cs.retire()
			}
		}
	}
	m.cfg, m.vss = cfg, next
	if m.sched != nil {
		for _, cs := range start {
			m.startJob(cs)
		}
	}
	m.markDirty()
	m.mu.Unlock()
	for _, vs := range gone {
		go func() { vs.queue.Drain(10 * time.Second); vs.queue.Close() }()
	}
	m.changed()
	return sum, nil
}

// adoptChecks gives nrs the running checks of ors whose settings are
// unchanged (each old check adopted at most once, in order) and returns
// how many it kept and the new checks that must start. Old checks not
// adopted are stopped.
func adoptChecks(nrs, ors *rsState) (kept int, restart []*checkState) {
	used := make([]bool, len(ors.checks))
	for i, ncs := range nrs.checks {
		match := -1
		for j, ocs := range ors.checks {
			if !used[j] && SameSettings(ocs.cfg, ncs.cfg) {
				match = j
				break
			}
		}
		if match < 0 {
			restart = append(restart, ncs)
			continue
		}
		used[match] = true
		ocs := ors.checks[match]
		// The running job calls back with ocs; keep that object and
		// point it at the new real server.
		ocs.rs, ocs.cfg = nrs, ncs.cfg
		nrs.checks[i] = ocs
		kept++
	}
	for j, ocs := range ors.checks {
		if !used[j] {
			ocs.retire()
		}
	}
	return kept, restart
}

// SameSettings reports whether two config values are equal apart from
// their file positions (Pos fields), which move whenever a line is added
// above them.
func SameSettings(a, b any) bool {
	return equalNoPos(reflect.ValueOf(a), reflect.ValueOf(b))
}

var posType = reflect.TypeOf(config.Pos{})

func equalNoPos(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalNoPos(a.Elem(), b.Elem())
	case reflect.Struct:
		if a.Type() == posType {
			return true
		}
		for i := range a.NumField() {
			if !equalNoPos(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalNoPos(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !equalNoPos(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() == b.Float()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return a.IsNil() && b.IsNil()
	}
	if a.CanInterface() && b.CanInterface() {
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
	return false
}

// ParseVS turns haloctl's virtual-server reference into the manager's
// identity: "ADDR:PORT" (with proto tcp, udp or sctp), "fwmark:N" or
// "group:NAME".
func ParseVS(ref, proto string) (string, error) {
	switch {
	case strings.HasPrefix(ref, "fwmark:"):
		n, err := strconv.ParseUint(ref[len("fwmark:"):], 10, 32)
		if err != nil || n == 0 {
			return "", fmt.Errorf("virtual server %q: bad fwmark", ref)
		}
		return fmt.Sprintf("fwmark:%d", n), nil
	case strings.HasPrefix(ref, "group:"):
		return ref, nil
	}
	ap, err := netip.ParseAddrPort(ref)
	if err != nil {
		return "", fmt.Errorf("virtual server %q: want ADDR:PORT, [ADDR6]:PORT, fwmark:N or group:NAME", ref)
	}
	switch proto = strings.ToLower(proto); proto {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return "", fmt.Errorf("protocol %q: want tcp, udp or sctp", proto)
	}
	return ap.String() + "/" + proto, nil
}

// SetDrain takes real server rs ("ADDR:PORT") of virtual server vs (an
// identity from ParseVS) out of new-flow selection (weight 0) or puts it
// back at its configured weight, without touching the config. The drain
// lasts until enabled again or the real leaves the config.
func (m *Manager) SetDrain(vs, rs string, drain bool) error {
	ap, err := netip.ParseAddrPort(rs)
	if err != nil {
		return fmt.Errorf("real server %q: want ADDR:PORT", rs)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.vss {
		if v.id != vs {
			continue
		}
		for _, r := range v.reals {
			if r.cfg.Addr == ap.Addr() && r.port == int(ap.Port()) {
				if r.drained != drain {
					r.drained = drain
					m.log.Info("real server drain", "virtual_server", v.name, "real_server", r.name, "drained", drain)
					m.updateQuorum(v)
					m.markDirty()
				}
				return nil
			}
		}
		return fmt.Errorf("virtual server %s has no real server %s", vs, rs)
	}
	return fmt.Errorf("no virtual server %s", vs)
}

// Validate reports whether Reload would accept cfg, changing nothing.
func (m *Manager) Validate(cfg *config.Config) error {
	_, err := m.build(cfg)
	return err
}
