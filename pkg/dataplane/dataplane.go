// Package dataplane is the contract between halo's control plane and the
// kernel that forwards virtual-service traffic.
//
// The contract is declarative. The control plane (config plus health checks)
// computes the whole desired set of virtual services with their real servers
// and hands it to Backend.Apply; the backend compares it with what it has
// installed and changes only the difference. Applying the same set twice is a
// no-op, and a backend that restarts can adopt its installed state and carry
// on, which is what lets halod restart without dropping traffic.
//
// Two backends implement it: dataplane/xdp (the fast path) and dataplane/ipvs
// (the Linux IPVS alternative). Recorder is an in-memory implementation for
// tests of the control plane.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Protocol is an IP protocol number.
type Protocol uint8

// Protocols a virtual service can carry.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// Method is how packets reach a real server (keepalived's lvs_method).
type Method string

// Forwarding methods.
const (
	NAT Method = "NAT" // DNAT to the real, reverse SNAT of its replies
	DR  Method = "DR"  // direct routing: MAC rewrite, the real owns the VIP on lo
	TUN Method = "TUN" // IP-in-IP (or GUE/GRE) encapsulation
)

// ServiceKey identifies a virtual service. Either Addr/Port/Proto is set or,
// for a firewall-mark service, FWMark (with Addr only telling the family).
type ServiceKey struct {
	Addr   netip.Addr
	Port   uint16
	Proto  Protocol
	FWMark uint32
}

func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		return fmt.Sprintf("fwmark:%d", k.FWMark)
	}
	return fmt.Sprintf("%s:%s", k.Proto, netip.AddrPortFrom(k.Addr, k.Port))
}

// RealKey identifies a real server within its service.
type RealKey struct {
	Addr netip.Addr
	Port uint16
}

func (k RealKey) String() string { return netip.AddrPortFrom(k.Addr, k.Port).String() }

// Real is one real server as the data plane sees it.
type Real struct {
	Addr netip.Addr
	Port uint16 // 0 means the service's port (DR and TUN cannot change it)
	// Weight 0 takes the real out of new-flow selection while its
	// established flows stay (keepalived's inhibit_on_failure).
	Weight uint32
	// Method overrides the service's method for this real when set.
	Method Method
	// MAC is the real's link-layer address for DR when the control plane
	// knows it; backends that need one resolve it themselves otherwise.
	MAC net.HardwareAddr
	// Down marks a configured real whose health checks fail: like weight 0
	// it takes no new flows while its established flows finish. A real that
	// is absent from the desired set is no longer configured: the XDP
	// backend sends its flows nowhere near it (they re-resolve).
	Down bool
	// Tunnel overrides the service's encapsulation for this TUN real when
	// its Type is set.
	Tunnel Tunnel
	// UpperThreshold and LowerThreshold are keepalived's uthreshold and
	// lthreshold connection limits (0: none); the IPVS backend applies them.
	UpperThreshold, LowerThreshold uint32
}

// Tunnel is the encapsulation of TUN forwarding, as keepalived spells it:
// `lvs_method TUN type ipip|gue port N|gre [nocsum|csum|remcsum]`.
type Tunnel struct {
	Type     string // ipip (the default when empty), gue or gre
	Port     uint16 // GUE's UDP destination port
	Checksum string // "" (nocsum), csum or remcsum; GUE and GRE only
}

// Key returns the real's identity within a service.
func (r Real) Key() RealKey { return RealKey{r.Addr, r.Port} }

// Service is one virtual service with its real servers.
type Service struct {
	Key ServiceKey
	// Scheduler is the lvs_sched name (rr, wrr, lc, wlc, sh, mh, …).
	Scheduler string
	// SchedFlags are scheduler flags such as sh-port or mh-fallback.
	SchedFlags []string
	Method     Method
	// Persistence is client affinity; 0 disables it.
	Persistence time.Duration
	// PersistenceMask is the prefix length that groups clients for
	// persistence (persistence_granularity); 0 means a full address.
	PersistenceMask int
	// OnePacket is one-packet scheduling (keepalived's ops): every UDP
	// datagram is scheduled on its own.
	OnePacket bool
	// Tunnel is the TUN encapsulation of the service's reals.
	Tunnel Tunnel
	Reals  []Real
}

// Stats are counters the backend keeps for a service or a real.
type Stats struct {
	Packets, Bytes uint64
	Conns          uint64
	// PacketsOut and BytesOut count replies the data plane forwarded back
	// (IPVS NAT); ActiveConns and InactiveConns are IPVS's per-real
	// connection gauges. The XDP backend leaves them zero.
	PacketsOut, BytesOut       uint64
	ActiveConns, InactiveConns uint64
}

// ServiceStats are a service's counters and those of its reals.
type ServiceStats struct {
	Key   ServiceKey
	Stats Stats
	Reals map[RealKey]Stats
}

// Backend forwards virtual-service traffic.
type Backend interface {
	// Name is the backend's name as the config spells it (xdp, ipvs, none).
	Name() string
	// Apply makes the installed services equal to desired. A service that is
	// invalid or that the backend cannot serve (or that exceeds its limits)
	// is skipped and reported in a *SkippedError while every other service
	// is applied: one bad service never stops the rest, nor health verdicts.
	// Removals are applied before additions, so a backend at its limits can
	// always take a replacement. On a kernel error part-way, it returns the
	// error and the next Apply retries the remaining difference.
	Apply(ctx context.Context, desired []Service) error
	// Services returns what is installed, in canonical order.
	Services(ctx context.Context) ([]Service, error)
	// Stats returns per-service and per-real counters.
	Stats(ctx context.Context) ([]ServiceStats, error)
	// Close releases the backend. Whether installed state survives is the
	// backend's documented choice (the XDP backend can leave it in place).
	Close() error
}

// SkippedError lists the services an Apply left out, each with its reason;
// everything else was applied. Find it with errors.As.
type SkippedError struct {
	Skipped map[ServiceKey]error
}

func (e *SkippedError) Error() string {
	keys := make([]ServiceKey, 0, len(e.Skipped))
	for k := range e.Skipped {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareService)
	var b strings.Builder
	fmt.Fprintf(&b, "%d service(s) skipped:", len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, " %s: %v;", k, e.Skipped[k])
	}
	return strings.TrimSuffix(b.String(), ";")
}

// SplitValid divides a desired set into the services that pass Validate on
// their own (a duplicate key: the first one) and the ones to skip, with
// their reasons: what a backend applies and what it reports.
func SplitValid(services []Service) (valid []Service, skipped map[ServiceKey]error) {
	skipped = map[ServiceKey]error{}
	seen := map[ServiceKey]bool{}
	for _, s := range services {
		if seen[s.Key] {
			skipped[s.Key] = errors.New("duplicate service")
			continue
		}
		seen[s.Key] = true
		if err := Validate([]Service{s}); err != nil {
			skipped[s.Key] = err
			continue
		}
		valid = append(valid, s)
	}
	return valid, skipped
}

// RealState says whether a backend can send new flows to a real of a
// service now, and why not.
type RealState struct {
	Service ServiceKey
	Real    RealKey
	Ready   bool
	Reason  string // empty when Ready
}

// RealStater is implemented by backends that can say which installed reals
// cannot take traffic (for example a DR real whose MAC is not resolved),
// for status output.
type RealStater interface {
	RealStates(ctx context.Context) ([]RealState, error)
}

// Validate checks a desired set: addresses valid, ports and protocols set,
// no duplicate services or reals, known methods, one address family per
// service. All problems are reported together.
func Validate(services []Service) error {
	var errs []error
	seen := map[ServiceKey]bool{}
	for _, s := range services {
		k := s.Key
		if seen[k] {
			errs = append(errs, fmt.Errorf("service %s: duplicate", k))
		}
		seen[k] = true
		if k.FWMark == 0 {
			if !k.Addr.IsValid() {
				errs = append(errs, fmt.Errorf("service %s: no address", k))
			}
			if k.Proto != TCP && k.Proto != UDP && k.Proto != SCTP {
				errs = append(errs, fmt.Errorf("service %s: unsupported protocol %d", k, k.Proto))
			}
			if k.Port == 0 && s.Persistence == 0 {
				errs = append(errs, fmt.Errorf("service %s: port 0 is allowed only with persistence", k))
			}
		}
		if err := validMethod(s.Method); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", k, err))
		}
		if s.PersistenceMask < 0 || s.PersistenceMask > 128 {
			errs = append(errs, fmt.Errorf("service %s: persistence mask /%d", k, s.PersistenceMask))
		}
		reals := map[RealKey]bool{}
		for _, r := range s.Reals {
			if !r.Addr.IsValid() {
				errs = append(errs, fmt.Errorf("service %s: real with no address", k))
				continue
			}
			if reals[r.Key()] {
				errs = append(errs, fmt.Errorf("service %s: duplicate real %s", k, r.Key()))
			}
			reals[r.Key()] = true
			if k.Addr.IsValid() && r.Addr.Is4() != k.Addr.Is4() {
				errs = append(errs, fmt.Errorf("service %s: real %s is of another address family", k, r.Key()))
			}
			if r.Method != "" {
				if err := validMethod(r.Method); err != nil {
					errs = append(errs, fmt.Errorf("service %s real %s: %w", k, r.Key(), err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func validMethod(m Method) error {
	switch m {
	case NAT, DR, TUN:
		return nil
	}
	return fmt.Errorf("unknown forwarding method %q", m)
}

// Canonical returns a copy of services sorted by key with reals sorted by
// key, so that two equal sets compare equal.
func Canonical(services []Service) []Service {
	out := make([]Service, len(services))
	for i, s := range services {
		s.Reals = slices.Clone(s.Reals)
		s.SchedFlags = slices.Clone(s.SchedFlags)
		slices.SortFunc(s.Reals, func(a, b Real) int { return compareReal(a.Key(), b.Key()) })
		slices.Sort(s.SchedFlags)
		out[i] = s
	}
	slices.SortFunc(out, func(a, b Service) int { return compareService(a.Key, b.Key) })
	return out
}

// canonicalView is services itself when it is already in canonical order
// (the common case: backends keep their sets canonical), else a canonical
// copy. For reading only.
func canonicalView(services []Service) []Service {
	for i, s := range services {
		if i > 0 && compareService(services[i-1].Key, s.Key) >= 0 {
			return Canonical(services)
		}
		for j := 1; j < len(s.Reals); j++ {
			if compareReal(s.Reals[j-1].Key(), s.Reals[j].Key()) >= 0 {
				return Canonical(services)
			}
		}
		if !slices.IsSorted(s.SchedFlags) {
			return Canonical(services)
		}
	}
	return services
}

func compareService(a, b ServiceKey) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	return int(int64(a.FWMark) - int64(b.FWMark))
}

func compareReal(a, b RealKey) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}

// Changes is the difference between an installed and a desired set, in the
// order a backend should apply it: new services first (so reals have a home),
// then real and service updates, then removals.
type Changes struct {
	AddServices    []Service
	UpdateServices []Service // service attributes changed (scheduler, method, persistence, ops, tunnel)
	AddReals       []RealChange
	UpdateReals    []RealChange // weight, method, MAC, tunnel or thresholds changed
	RemoveReals    []RealChange
	RemoveServices []ServiceKey
}

// RealChange names a real within its service.
type RealChange struct {
	Service ServiceKey
	Real    Real
}

// Empty reports whether nothing changes.
func (c Changes) Empty() bool {
	return len(c.AddServices)+len(c.UpdateServices)+len(c.AddReals)+len(c.UpdateReals)+
		len(c.RemoveReals)+len(c.RemoveServices) == 0
}

func (c Changes) String() string {
	var b strings.Builder
	for _, s := range c.AddServices {
		fmt.Fprintf(&b, "+service %s (%d reals)\n", s.Key, len(s.Reals))
	}
	for _, s := range c.UpdateServices {
		fmt.Fprintf(&b, "~service %s\n", s.Key)
	}
	for _, r := range c.AddReals {
		fmt.Fprintf(&b, "+real %s %s w%d\n", r.Service, r.Real.Key(), r.Real.Weight)
	}
	for _, r := range c.UpdateReals {
		fmt.Fprintf(&b, "~real %s %s w%d\n", r.Service, r.Real.Key(), r.Real.Weight)
	}
	for _, r := range c.RemoveReals {
		fmt.Fprintf(&b, "-real %s %s\n", r.Service, r.Real.Key())
	}
	for _, k := range c.RemoveServices {
		fmt.Fprintf(&b, "-service %s\n", k)
	}
	return b.String()
}

// Diff computes what turns installed into desired. Reals of an added service
// are carried inside AddServices, and reals of a removed service are not
// listed separately.
func Diff(installed, desired []Service) Changes {
	var c Changes
	have := map[ServiceKey]Service{}
	for _, s := range installed {
		have[s.Key] = s
	}
	want := map[ServiceKey]bool{}
	for _, d := range canonicalView(desired) {
		want[d.Key] = true
		h, ok := have[d.Key]
		if !ok {
			c.AddServices = append(c.AddServices, d)
			continue
		}
		if !sameServiceAttrs(h, d) {
			c.UpdateServices = append(c.UpdateServices, d)
		} else if sameReals(canonicalView([]Service{h})[0].Reals, d.Reals) {
			continue // the common case of a large set: nothing changed here
		}
		hr := map[RealKey]Real{}
		for _, r := range h.Reals {
			hr[r.Key()] = r
		}
		wr := map[RealKey]bool{}
		for _, r := range d.Reals {
			wr[r.Key()] = true
			old, ok := hr[r.Key()]
			switch {
			case !ok:
				c.AddReals = append(c.AddReals, RealChange{d.Key, r})
			case realChanged(old, r):
				c.UpdateReals = append(c.UpdateReals, RealChange{d.Key, r})
			}
		}
		for _, r := range canonicalView([]Service{h})[0].Reals {
			if !wr[r.Key()] {
				c.RemoveReals = append(c.RemoveReals, RealChange{d.Key, r})
			}
		}
	}
	for _, h := range canonicalView(installed) {
		if !want[h.Key] {
			c.RemoveServices = append(c.RemoveServices, h.Key)
		}
	}
	return c
}

// sameReals reports whether two canonical real lists are equal in every
// field Diff compares.
func sameReals(a, b []Real) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key() != b[i].Key() || realChanged(a[i], b[i]) {
			return false
		}
	}
	return true
}

// realChanged reports whether desired real r differs from installed old in
// anything a backend applies: the one list of compared fields.
func realChanged(old, r Real) bool {
	return old.Weight != r.Weight || old.Method != r.Method || old.Down != r.Down ||
		(r.MAC != nil && old.MAC.String() != r.MAC.String()) || old.Tunnel != r.Tunnel ||
		old.UpperThreshold != r.UpperThreshold || old.LowerThreshold != r.LowerThreshold
}

func sameServiceAttrs(a, b Service) bool {
	return a.Scheduler == b.Scheduler && a.Method == b.Method && a.Persistence == b.Persistence &&
		a.PersistenceMask == b.PersistenceMask && a.OnePacket == b.OnePacket && a.Tunnel == b.Tunnel && slices.Equal(sortedCopy(a.SchedFlags), sortedCopy(b.SchedFlags))
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
