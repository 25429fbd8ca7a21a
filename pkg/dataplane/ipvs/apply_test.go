package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"

	"github.com/halo-lb/halo/pkg/dataplane"
)

var ctx = context.Background()

func ap(s string) netip.Addr { return netip.MustParseAddr(s) }

// sample is a desired set with one service of each kind the backend must
// handle: NAT with persistence and a granularity, DR with sh flags, TUN
// with per-real tunnel overrides, a firewall mark, IPv6, UDP with ops.
func sample() []dataplane.Service {
	return []dataplane.Service{
		{Key: dataplane.ServiceKey{Addr: ap("10.0.0.100"), Port: 80, Proto: dataplane.TCP}, Scheduler: "wlc", Method: dataplane.NAT,
			Persistence: 300 * time.Second, PersistenceMask: 24,
			Reals: []dataplane.Real{{Addr: ap("10.0.1.11"), Port: 8080, Weight: 2}, {Addr: ap("10.0.1.12"), Port: 8080, Weight: 1, UpperThreshold: 100}}},
		{Key: dataplane.ServiceKey{Addr: ap("10.0.0.100"), Port: 443, Proto: dataplane.TCP}, Scheduler: "sh", SchedFlags: []string{"sh-port", "sh-fallback"},
			Method: dataplane.DR, Reals: []dataplane.Real{{Addr: ap("10.0.1.11"), Weight: 1}, {Addr: ap("10.0.1.12"), Weight: 0}}},
		{Key: dataplane.ServiceKey{Addr: ap("10.0.0.101"), Port: 80, Proto: dataplane.TCP}, Scheduler: "mh", SchedFlags: []string{"mh-port"},
			Method: dataplane.TUN, Tunnel: dataplane.Tunnel{Type: "gue", Port: 6080, Checksum: "remcsum"},
			Reals: []dataplane.Real{{Addr: ap("10.0.2.11"), Weight: 1}, {Addr: ap("10.0.2.12"), Weight: 1, Tunnel: dataplane.Tunnel{Type: "gre", Checksum: "csum"}},
				{Addr: ap("10.0.2.13"), Weight: 1, Method: dataplane.NAT}}},
		{Key: dataplane.ServiceKey{FWMark: 7}, Scheduler: "rr", Method: dataplane.DR, Persistence: 60 * time.Second,
			Reals: []dataplane.Real{{Addr: ap("10.0.3.11"), Weight: 1}}},
		{Key: dataplane.ServiceKey{Addr: ap("fd00::100"), Port: 53, Proto: dataplane.UDP}, Scheduler: "lc", Method: dataplane.NAT, OnePacket: true,
			Persistence: 30 * time.Second, PersistenceMask: 64,
			Reals: []dataplane.Real{{Addr: ap("fd00::11"), Weight: 1}, {Addr: ap("fd00::12"), Weight: 3}}},
	}
}

func newTest(t *testing.T, f *fakeKernel, opts Options) *Backend {
	t.Helper()
	b := NewWithClient(f, opts)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func kernel(f *fakeKernel, id ident) *fakeSvc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.svcs[id]
}

func TestApplyInstallsWhatKeepalivedWould(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Writes()); n != 5+10 {
		t.Errorf("%d writes, want 5 services + 10 reals", n)
	}
	// NAT, persistence 300 s per /24.
	s := kernel(f, ident{fam: ipvs.INET, addr: ap("10.0.0.100"), port: 80, proto: ipvs.TCP})
	if s == nil {
		t.Fatal("NAT service missing")
	}
	if s.svc.Scheduler != "wlc" || s.svc.Flags&ipvs.ServicePersistent == 0 || s.svc.Timeout != 300 ||
		s.svc.Netmask != netmask.MaskFrom(24, 32) {
		t.Errorf("NAT service %+v", s.svc.Service)
	}
	if len(s.dests) != 2 || s.dests[0].FwdMethod != ipvs.Masquerade || s.dests[0].Port != 8080 || s.dests[1].UpperThreshold != 100 {
		t.Errorf("NAT reals %+v", s.dests)
	}
	// sh with sh-port and sh-fallback; DR reals take the service's port; weight 0 stays.
	s = kernel(f, ident{fam: ipvs.INET, addr: ap("10.0.0.100"), port: 443, proto: ipvs.TCP})
	if s.svc.Flags&(ipvs.ServiceSchedulerOpt1|ipvs.ServiceSchedulerOpt2) != ipvs.ServiceSchedulerOpt1|ipvs.ServiceSchedulerOpt2 ||
		s.svc.Flags&ipvs.ServicePersistent != 0 || s.svc.Netmask != netmask.MaskFrom(32, 32) {
		t.Errorf("sh service %+v", s.svc.Service)
	}
	if s.dests[0].FwdMethod != ipvs.DirectRoute || s.dests[0].Port != 443 || s.dests[1].Weight != 0 {
		t.Errorf("DR reals %+v", s.dests)
	}
	// TUN: the service's gue tunnel, one real's gre override, one real in NAT.
	s = kernel(f, ident{fam: ipvs.INET, addr: ap("10.0.0.101"), port: 80, proto: ipvs.TCP})
	got := map[netip.Addr]ipvs.Destination{}
	for _, d := range s.dests {
		got[d.Address] = d.Destination
	}
	if d := got[ap("10.0.2.11")]; d.FwdMethod != ipvs.Tunnel || d.TunnelType != ipvs.GUE || d.TunnelPort != 6080 || d.TunnelFlags != ipvs.TunnelEncapRemoteChecksum {
		t.Errorf("gue real %+v", d)
	}
	if d := got[ap("10.0.2.12")]; d.FwdMethod != ipvs.Tunnel || d.TunnelType != ipvs.GRE || d.TunnelPort != 0 || d.TunnelFlags != ipvs.TunnelEncapChecksum {
		t.Errorf("gre real %+v", d)
	}
	if d := got[ap("10.0.2.13")]; d.FwdMethod != ipvs.Masquerade || d.TunnelType != 0 {
		t.Errorf("NAT real in a TUN service %+v", d)
	}
	// fwmark, IPv4 from its reals.
	if s = kernel(f, ident{fam: ipvs.INET, fwmark: 7}); s == nil || s.svc.Timeout != 60 || s.svc.Protocol != 0 {
		t.Errorf("fwmark service %+v", s)
	}
	// IPv6 UDP with ops and a /64 granularity.
	s = kernel(f, ident{fam: ipvs.INET6, addr: ap("fd00::100"), port: 53, proto: ipvs.UDP})
	if s == nil || s.svc.Flags&ipvs.ServiceOnePacket == 0 || s.svc.Netmask != netmask.MaskFrom(64, 128) || s.svc.Scheduler != "lc" {
		t.Errorf("IPv6 service %+v", s)
	}
	// Read-back gives the set as the control plane spelled it.
	have, err := b.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := dataplane.Canonical(sample()); !reflect.DeepEqual(have, want) {
		t.Errorf("Services:\n got %+v\nwant %+v", have, want)
	}
}

func TestApplySameSetWritesNothing(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	f.Writes()
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if w := f.Writes(); len(w) != 0 {
		t.Errorf("second Apply wrote %v", w)
	}
}

func TestApplyTouchesOnlyTheDifference(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	f.Writes()
	next := sample()
	next[0].Reals[1].Weight = 0                                                             // checker failed, inhibit_on_failure
	next[1].Reals = next[1].Reals[:1]                                                       // checker failed, no inhibit
	next[2].Reals = append(next[2].Reals, dataplane.Real{Addr: ap("10.0.2.14"), Weight: 5}) // new real
	next[4].Scheduler = "wrr"                                                               // reload changed the scheduler
	next = slices.Delete(next, 3, 4)                                                        // fwmark service gone
	if err := b.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"update-service udp:[fd00::100]:53",
		"create-dest tcp:10.0.0.101:80 10.0.2.14:80",
		"update-dest tcp:10.0.0.100:80 10.0.1.12:8080",
		"remove-dest tcp:10.0.0.100:443 10.0.1.12:443",
		"remove-service fwmark:7/INET",
	}
	if w := f.Writes(); !reflect.DeepEqual(w, want) {
		t.Errorf("writes:\n got %q\nwant %q", w, want)
	}
	if s := kernel(f, ident{fam: ipvs.INET, addr: ap("10.0.0.100"), port: 80, proto: ipvs.TCP}); s.dests[1].Weight != 0 {
		t.Errorf("weight 0 not applied: %+v", s.dests[1])
	}
}

func TestForeignServicesAreLeftAlone(t *testing.T) {
	f := newFake()
	foreign := ipvs.Service{Family: ipvs.INET, Address: ap("192.0.2.1"), Port: 25, Protocol: ipvs.TCP, Scheduler: "rr", Netmask: netmask.MaskFrom(32, 32)}
	if err := f.CreateService(foreign); err != nil {
		t.Fatal(err)
	}
	f.Writes()
	b := NewWithClient(f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, sample()[:1]); err != nil {
		t.Fatal(err)
	}
	have, _ := b.Services(ctx)
	if len(have) != 1 {
		t.Errorf("Services reports %d, want only halod's one", len(have))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	list, err := f.Services()
	if err != nil || len(list) != 1 || identOfKernel(list[0].Service) != identOfKernel(foreign) {
		t.Errorf("after Close the kernel has %v (%v), want only the foreign service", list, err)
	}
}

func TestRestartAdoptsWithoutWriting(t *testing.T) {
	f := newFake()
	old := NewWithClient(f, Options{KeepOnClose: true})
	if err := old.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if list, _ := f.Services(); len(list) != 5 {
		t.Fatalf("KeepOnClose left %d services, want 5", len(list))
	}
	f.Writes()
	// The new halod's config drops one real's weight and no longer has the
	// fwmark service; a stale service the old one created stays, since
	// nothing says it was halod's.
	b := NewWithClient(f, Options{})
	next := sample()
	next[0].Reals[0].Weight = 7
	next = slices.Delete(next, 3, 4)
	if err := b.Apply(ctx, next); err != nil {
		t.Fatal(err)
	}
	if w := f.Writes(); !reflect.DeepEqual(w, []string{"update-dest tcp:10.0.0.100:80 10.0.1.11:8080"}) {
		t.Errorf("adoption wrote %q, want one weight update", w)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	list, _ := f.Services()
	if len(list) != 1 || list[0].FWMark != 7 {
		t.Errorf("after a clean stop the kernel has %+v, want only the unadopted fwmark service", list)
	}
}

func TestInvalidSetChangesNothing(t *testing.T) {
	bad := map[string]func(s []dataplane.Service) []dataplane.Service{
		"scheduler":   func(s []dataplane.Service) []dataplane.Service { s[0].Scheduler = "fancy"; return s },
		"flag":        func(s []dataplane.Service) []dataplane.Service { s[0].SchedFlags = []string{"sh-sideways"}; return s },
		"gue no port": func(s []dataplane.Service) []dataplane.Service { s[2].Tunnel.Port = 0; return s },
		"ipip csum": func(s []dataplane.Service) []dataplane.Service {
			s[2].Reals[1].Tunnel = dataplane.Tunnel{Type: "ipip", Checksum: "csum"}
			return s
		},
		"gre remcsum": func(s []dataplane.Service) []dataplane.Service { s[2].Reals[1].Tunnel.Checksum = "remcsum"; return s },
		"tunnel type": func(s []dataplane.Service) []dataplane.Service { s[2].Tunnel.Type = "vxlan"; return s },
		"mask":        func(s []dataplane.Service) []dataplane.Service { s[0].PersistenceMask = 33; return s },
		"family NAT": func(s []dataplane.Service) []dataplane.Service {
			s[3].Reals[0].Addr = ap("fd00::3")
			s[3].Reals = append(s[3].Reals, dataplane.Real{Addr: ap("10.9.9.9")})
			return s
		},
		"same identity": func(s []dataplane.Service) []dataplane.Service {
			return append(s, dataplane.Service{Key: dataplane.ServiceKey{Addr: ap("0.0.0.0"), FWMark: 7}, Method: dataplane.DR})
		},
		"duplicate": func(s []dataplane.Service) []dataplane.Service { return append(s, s[0]) },
	}
	for name, mut := range bad {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			b := newTest(t, f, Options{})
			err := b.Apply(ctx, mut(sample()))
			if err == nil {
				t.Fatal("Apply accepted an invalid set")
			}
			if w := f.Writes(); len(w) != 0 {
				t.Errorf("an invalid set wrote %q", w)
			}
		})
	}
}

func TestFailedStepIsRetried(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	f.fail["create-dest"] = syscall.ENOMEM
	err := b.Apply(ctx, sample())
	if !errors.Is(err, syscall.ENOMEM) || !strings.Contains(err.Error(), "add real") {
		t.Fatalf("Apply error %v, want the failed real named", err)
	}
	if n := len(f.Writes()); n != 14 {
		t.Errorf("%d writes after one failure, want the other 14 done", n)
	}
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if w := f.Writes(); len(w) != 1 || !strings.HasPrefix(w[0], "create-dest") {
		t.Errorf("retry wrote %q, want the one missing real", w)
	}
}

func TestRepairsChangesMadeBehindItsBack(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	nat := ipvs.Service{Family: ipvs.INET, Address: ap("10.0.0.100"), Port: 80, Protocol: ipvs.TCP}
	if err := f.RemoveDestination(nat, ipvs.Destination{Address: ap("10.0.1.11"), Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if err := f.RemoveService(ipvs.Service{Family: ipvs.INET, FWMark: 7}); err != nil {
		t.Fatal(err)
	}
	f.Writes()
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	want := []string{"create-service fwmark:7/INET", "create-dest fwmark:7/INET 10.0.3.11:0", "create-dest tcp:10.0.0.100:80 10.0.1.11:8080"}
	if w := f.Writes(); !reflect.DeepEqual(w, want) {
		t.Errorf("repair wrote %q, want %q", w, want)
	}
}

func TestStatsUseTheControlPlanesKeys(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	f.setStats(ident{fam: ipvs.INET, addr: ap("10.0.0.100"), port: 443, proto: ipvs.TCP},
		ipvs.Stats{Connections: 9, IncomingPackets: 90, IncomingBytes: 9000, OutgoingPackets: 1, OutgoingBytes: 2},
		func(d *ipvs.DestinationExtended) {
			d.ActiveConnections, d.InactiveConnections = 3, 4
			d.Stats64 = ipvs.Stats{Connections: 5, IncomingPackets: 50, IncomingBytes: 500}
		})
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 5 {
		t.Fatalf("%d services in Stats, want 5", len(st))
	}
	var dr *dataplane.ServiceStats
	for i := range st {
		if st[i].Key == sample()[1].Key {
			dr = &st[i]
		}
	}
	if dr == nil {
		t.Fatalf("no stats for %s", sample()[1].Key)
	}
	want := dataplane.Stats{Packets: 90, Bytes: 9000, Conns: 9, PacketsOut: 1, BytesOut: 2}
	if dr.Stats != want {
		t.Errorf("service stats %+v, want %+v", dr.Stats, want)
	}
	// The DR reals were given without a port: their stats come back under
	// the same port-0 keys, not the service port IPVS stores.
	r := dr.Reals[dataplane.RealKey{Addr: ap("10.0.1.11")}]
	if r != (dataplane.Stats{Packets: 50, Bytes: 500, Conns: 5, ActiveConns: 3, InactiveConns: 4}) {
		t.Errorf("real stats %+v (all: %+v)", r, dr.Reals)
	}
}

func TestEmptySetRemovesOnlyOwned(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if list, err := f.Services(); !errors.Is(err, syscall.ENOENT) && len(list) != 0 {
		t.Errorf("kernel still has %v", list)
	}
	if have, err := b.Services(ctx); err != nil || len(have) != 0 {
		t.Errorf("Services %v %v", have, err)
	}
}

func TestNewNamesTheMissingModule(t *testing.T) {
	b, err := New(Options{})
	if err == nil {
		b.Close()
		t.Skip("this kernel has IPVS; the missing-module error cannot be seen here")
	}
	if !errors.Is(err, ErrNoIPVS) || !strings.Contains(err.Error(), "ip_vs") {
		t.Errorf("error %q does not name module ip_vs", err)
	}
}

func TestDownRealLeavesTheTable(t *testing.T) {
	f := newFake()
	b := newTest(t, f, Options{})
	set := sample()
	if err := b.Apply(ctx, set); err != nil {
		t.Fatal(err)
	}
	f.Writes()
	set[0].Reals[0].Down = true
	if err := b.Apply(ctx, set); err != nil {
		t.Fatal(err)
	}
	if w := f.Writes(); !reflect.DeepEqual(w, []string{"remove-dest tcp:10.0.0.100:80 10.0.1.11:8080"}) {
		t.Errorf("writes %q", w)
	}
	for _, d := range kernel(f, ident{fam: ipvs.INET, addr: ap("10.0.0.100"), port: 80, proto: ipvs.TCP}).dests {
		if d.Address == ap("10.0.1.11") {
			t.Errorf("down real still in the kernel: %+v", d)
		}
	}
	// Applying the same set again writes nothing: the read-back agrees.
	if err := b.Apply(ctx, set); err != nil {
		t.Fatal(err)
	}
	if w := f.Writes(); len(w) != 0 {
		t.Errorf("second apply wrote %q", w)
	}
}
