package ipvs

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// Schedulers are the lvs_sched names keepalived accepts; the kernel loads
// the matching ip_vs_<name> module on first use.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// defaultScheduler is keepalived's default lvs_sched.
const defaultScheduler = "wlc"

// ident is a service's identity in the kernel: IPVS keys a service by
// family, protocol, address and port, or by family and firewall mark.
type ident struct {
	fam    ipvs.AddressFamily
	addr   netip.Addr
	port   uint16
	proto  ipvs.Protocol
	fwmark uint32
}

func (i ident) String() string {
	if i.fwmark != 0 {
		return fmt.Sprintf("fwmark:%d/%s", i.fwmark, i.fam)
	}
	return fmt.Sprintf("%s:%s", dataplane.Protocol(i.proto), netip.AddrPortFrom(i.addr, i.port))
}

func familyOf(a netip.Addr) ipvs.AddressFamily {
	if a.Is4() {
		return ipvs.INET
	}
	return ipvs.INET6
}

// serviceFamily: a firewall-mark service has no address, so the control
// plane tells its family with Key.Addr (0.0.0.0 or ::); failing that the
// reals tell it, as keepalived derives ip_family from them, and IPv4 is the
// default.
func serviceFamily(s dataplane.Service) ipvs.AddressFamily {
	if s.Key.Addr.IsValid() {
		return familyOf(s.Key.Addr)
	}
	for _, r := range s.Reals {
		return familyOf(r.Addr)
	}
	return ipvs.INET
}

func identOf(s dataplane.Service) ident {
	fam := serviceFamily(s)
	if s.Key.FWMark != 0 {
		return ident{fam: fam, fwmark: s.Key.FWMark}
	}
	return ident{fam: fam, addr: s.Key.Addr, port: s.Key.Port, proto: ipvs.Protocol(s.Key.Proto)}
}

func identOfKernel(s ipvs.Service) ident {
	if s.FWMark != 0 {
		return ident{fam: s.Family, fwmark: s.FWMark}
	}
	return ident{fam: s.Family, addr: s.Address, port: s.Port, proto: s.Protocol}
}

func bitsOf(fam ipvs.AddressFamily) int {
	if fam == ipvs.INET {
		return 32
	}
	return 128
}

// schedFlagBits maps keepalived's scheduler flags to IPVS's three
// scheduler-private flag bits; sh and mh give them names.
var schedFlagBits = map[string]ipvs.Flags{
	"flag-1": ipvs.ServiceSchedulerOpt1, "flag-2": ipvs.ServiceSchedulerOpt2, "flag-3": ipvs.ServiceSchedulerOpt3,
	"sh-fallback": ipvs.ServiceSchedulerOpt1, "sh-port": ipvs.ServiceSchedulerOpt2,
	"mh-fallback": ipvs.ServiceSchedulerOpt1, "mh-port": ipvs.ServiceSchedulerOpt2,
}

func schedFlagNames(sched string, f ipvs.Flags) []string {
	names := [3]string{"flag-1", "flag-2", "flag-3"}
	switch sched {
	case "sh":
		names[0], names[1] = "sh-fallback", "sh-port"
	case "mh":
		names[0], names[1] = "mh-fallback", "mh-port"
	}
	var out []string
	for i, bit := range []ipvs.Flags{ipvs.ServiceSchedulerOpt1, ipvs.ServiceSchedulerOpt2, ipvs.ServiceSchedulerOpt3} {
		if f&bit != 0 {
			out = append(out, names[i])
		}
	}
	return out
}

// toService converts a contract service to the IPVS service that installs
// it. Everything keepalived would refuse to hand the kernel is an error
// here, so Apply fails before changing anything.
func toService(s dataplane.Service) (ipvs.Service, error) {
	id := identOf(s)
	sched := s.Scheduler
	if sched == "" {
		sched = defaultScheduler
	}
	var errs []error
	known := false
	for _, n := range Schedulers {
		known = known || n == sched
	}
	if !known {
		errs = append(errs, fmt.Errorf("unknown scheduler %q", sched))
	}
	svc := ipvs.Service{Family: id.fam, Scheduler: sched, Netmask: netmask.MaskFrom(bitsOf(id.fam), bitsOf(id.fam)),
		Address: id.addr, Port: id.port, Protocol: id.proto, FWMark: id.fwmark}
	for _, f := range s.SchedFlags {
		bit, ok := schedFlagBits[f]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown scheduler flag %q", f))
		}
		svc.Flags |= bit
	}
	if s.OnePacket {
		svc.Flags |= ipvs.ServiceOnePacket
	}
	if s.Persistence > 0 {
		svc.Flags |= ipvs.ServicePersistent
		// IPVS counts whole seconds; a fraction rounds up so that
		// persistence never silently turns off.
		secs := math.Ceil(s.Persistence.Seconds())
		if secs > math.MaxUint32/1000 {
			errs = append(errs, fmt.Errorf("persistence timeout %s is too long", s.Persistence))
		}
		svc.Timeout = uint32(secs)
		if m := s.PersistenceMask; m > 0 {
			if m > bitsOf(id.fam) {
				errs = append(errs, fmt.Errorf("persistence granularity /%d is longer than the address", m))
			} else {
				svc.Netmask = netmask.MaskFrom(m, bitsOf(id.fam))
			}
		}
	}
	return svc, errors.Join(errs...)
}

var methods = map[dataplane.Method]ipvs.ForwardType{dataplane.NAT: ipvs.Masquerade, dataplane.DR: ipvs.DirectRoute, dataplane.TUN: ipvs.Tunnel}

// toDestination converts a real. The real's method and tunnel fall back to
// the service's, and the service's method to NAT, keepalived's default.
func toDestination(s dataplane.Service, r dataplane.Real) (ipvs.Destination, error) {
	m := r.Method
	if m == "" {
		m = s.Method
	}
	if m == "" {
		m = dataplane.NAT
	}
	port := r.Port
	if port == 0 {
		port = s.Key.Port
	}
	d := ipvs.Destination{Address: r.Addr, Port: port, Family: familyOf(r.Addr), Weight: r.Weight,
		UpperThreshold: r.UpperThreshold, LowerThreshold: r.LowerThreshold, FwdMethod: methods[m]}
	if r.Down {
		// A failed real that the control plane keeps (inhibit) drains in
		// IPVS at weight 0: established connections stay, new ones go
		// elsewhere.
		d.Weight = 0
	}
	var errs []error
	if r.Weight > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("weight %d is above IPVS's limit", r.Weight))
	}
	if d.Family != serviceFamily(s) && m != dataplane.TUN {
		errs = append(errs, fmt.Errorf("an IPv%s real in an IPv%s service needs TUN", famName(d.Family), famName(serviceFamily(s))))
	}
	if m == dataplane.TUN {
		t := r.Tunnel
		if t.Type == "" {
			t = s.Tunnel
		}
		tt, port, flags, err := tunnel(t)
		if err != nil {
			errs = append(errs, err)
		}
		d.TunnelType, d.TunnelPort, d.TunnelFlags = tt, port, flags
	}
	return d, errors.Join(errs...)
}

func famName(f ipvs.AddressFamily) string {
	if f == ipvs.INET {
		return "4"
	}
	return "6"
}

func tunnel(t dataplane.Tunnel) (ipvs.TunnelType, uint16, ipvs.TunnelFlags, error) {
	var tt ipvs.TunnelType
	switch t.Type {
	case "", "ipip":
		tt = ipvs.IPIP
	case "gue":
		tt = ipvs.GUE
	case "gre":
		tt = ipvs.GRE
	default:
		return 0, 0, 0, fmt.Errorf("tunnel type %q is not ipip, gue or gre", t.Type)
	}
	if tt == ipvs.GUE && t.Port == 0 {
		return 0, 0, 0, errors.New("a gue tunnel needs a port")
	}
	if tt != ipvs.GUE && t.Port != 0 {
		return 0, 0, 0, fmt.Errorf("tunnel port %d: only gue tunnels have a port", t.Port)
	}
	var f ipvs.TunnelFlags
	switch t.Checksum {
	case "", "nocsum":
	case "csum":
		f = ipvs.TunnelEncapChecksum
	case "remcsum":
		f = ipvs.TunnelEncapRemoteChecksum
	default:
		return 0, 0, 0, fmt.Errorf("tunnel checksum option %q is not nocsum, csum or remcsum", t.Checksum)
	}
	if f != 0 && tt == ipvs.IPIP {
		return 0, 0, 0, fmt.Errorf("ipip tunnels have no %s option", t.Checksum)
	}
	if f == ipvs.TunnelEncapRemoteChecksum && tt != ipvs.GUE {
		return 0, 0, 0, errors.New("remcsum needs a gue tunnel")
	}
	return tt, t.Port, f, nil
}

// fromKernel converts what the kernel reports into the contract's form. It
// is also the normal form Apply compares in: a desired service is taken to
// the kernel's form and back (normalize), so that spellings the kernel does
// not keep (an empty scheduler for wlc, flag-1 for sh-fallback, a /32
// persistence mask, the service-level method) never look like a change.
func fromKernel(key dataplane.ServiceKey, s ipvs.Service, dests []ipvs.Destination) dataplane.Service {
	out := dataplane.Service{Key: key, Scheduler: s.Scheduler, SchedFlags: schedFlagNames(s.Scheduler, s.Flags),
		OnePacket: s.Flags&ipvs.ServiceOnePacket != 0}
	if s.Flags&ipvs.ServicePersistent != 0 {
		out.Persistence = time.Duration(s.Timeout) * time.Second
		if b := s.Netmask.Bits(); b > 0 && b < bitsOf(s.Family) {
			out.PersistenceMask = b
		}
	}
	for _, d := range dests {
		r := dataplane.Real{Addr: d.Address, Port: d.Port, Weight: d.Weight, Method: methodOf(d.FwdMethod),
			UpperThreshold: d.UpperThreshold, LowerThreshold: d.LowerThreshold}
		if d.FwdMethod == ipvs.Tunnel {
			r.Tunnel = tunnelOf(d)
		}
		out.Reals = append(out.Reals, r)
	}
	return dataplane.Canonical([]dataplane.Service{out})[0]
}

func methodOf(f ipvs.ForwardType) dataplane.Method {
	for m, t := range methods {
		if t == f {
			return m
		}
	}
	// Local and bypass destinations are never halo's; naming them keeps
	// them different from every method halo installs.
	return dataplane.Method(f.String())
}

func tunnelOf(d ipvs.Destination) dataplane.Tunnel {
	t := dataplane.Tunnel{Type: "ipip"}
	switch d.TunnelType {
	case ipvs.GUE:
		t.Type, t.Port = "gue", d.TunnelPort
	case ipvs.GRE:
		t.Type = "gre"
	}
	switch d.TunnelFlags {
	case ipvs.TunnelEncapChecksum:
		t.Checksum = "csum"
	case ipvs.TunnelEncapRemoteChecksum:
		t.Checksum = "remcsum"
	}
	return t
}

// planned is one desired service converted for the kernel.
type planned struct {
	orig  dataplane.Service
	norm  dataplane.Service
	id    ident
	svc   ipvs.Service
	dests map[dataplane.RealKey]ipvs.Destination // by normalized real key
	// realKeys maps a normalized real key back to the key the control
	// plane used (port 0 becomes the service's port).
	realKeys map[dataplane.RealKey]dataplane.RealKey
}

// plan converts a whole desired set, reporting every problem at once.
func plan(desired []dataplane.Service) (map[dataplane.ServiceKey]*planned, error) {
	out := map[dataplane.ServiceKey]*planned{}
	byID := map[ident]dataplane.ServiceKey{}
	var errs []error
	for _, s := range desired {
		p, err := planOne(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", s.Key, err))
			continue
		}
		if other, dup := byID[p.id]; dup {
			errs = append(errs, fmt.Errorf("service %s: the same IPVS service as %s", s.Key, other))
			continue
		}
		byID[p.id] = s.Key
		out[s.Key] = p
	}
	return out, errors.Join(errs...)
}

func planOne(s dataplane.Service) (*planned, error) {
	svc, err := toService(s)
	p := &planned{orig: s, id: identOf(s), svc: svc, dests: map[dataplane.RealKey]ipvs.Destination{},
		realKeys: map[dataplane.RealKey]dataplane.RealKey{}}
	errs := []error{err}
	var list []ipvs.Destination
	for _, r := range s.Reals {
		d, err := toDestination(s, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("real %s: %w", r.Key(), err))
			continue
		}
		k := dataplane.RealKey{Addr: d.Address, Port: d.Port}
		if _, dup := p.dests[k]; dup {
			errs = append(errs, fmt.Errorf("real %s: the same IPVS destination as another real", r.Key()))
			continue
		}
		p.dests[k] = d
		p.realKeys[k] = r.Key()
		list = append(list, d)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.norm = fromKernel(s.Key, svc, list)
	return p, nil
}
