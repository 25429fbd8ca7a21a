package vrrpd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/vip"
	"github.com/halo-lb/halo/pkg/vipfw"
	"github.com/halo-lb/halo/pkg/vrrp"
)

// fakeFirewall keeps what the daemon asks of the no_accept firewall: the
// dropped VIPs per instance, and whether the table was closed.
type fakeFirewall struct {
	blocked map[string]string
	vmacs   map[string][]vipfw.VMACLink
	closes  int
	cfg     vipfw.Config
	opens   int
	openErr error
}

func (f *fakeFirewall) Block(name string, vips []vipfw.VIP) error {
	var s []string
	for _, v := range vips {
		s = append(s, v.Addr.String())
	}
	if len(s) == 0 {
		delete(f.blocked, name)
	} else {
		f.blocked[name] = strings.Join(s, ",")
	}
	return nil
}

func (f *fakeFirewall) Unblock(name string) error { return f.Block(name, nil) }

func (f *fakeFirewall) SetVMAC(name string, ls []vipfw.VMACLink) error {
	if f.vmacs == nil {
		f.vmacs = map[string][]vipfw.VMACLink{}
	}
	if len(ls) == 0 {
		delete(f.vmacs, name)
	} else {
		f.vmacs[name] = ls
	}
	return nil
}

func (f *fakeFirewall) Close() error {
	f.closes++
	f.blocked = map[string]string{}
	return nil
}

func (f *fakeFirewall) state() string { return fmt.Sprint(f.blocked) }

func useFakeFirewall(t *testing.T) *fakeFirewall {
	t.Helper()
	f := &fakeFirewall{blocked: map[string]string{}}
	old := OpenFirewall
	OpenFirewall = func(cfg vipfw.Config, _ *slog.Logger) (Firewall, error) {
		f.opens++
		f.cfg = cfg
		if f.openErr != nil {
			return nil, f.openErr
		}
		return f, nil
	}
	t.Cleanup(func() { OpenFirewall = old })
	return f
}

func becomeMaster(t *testing.T, d *Daemon, clk *fakeClock, in *instance) {
	t.Helper()
	clk.t = in.m.Deadline()
	d.apply(in, in.m.Tick(clk.t))
	if in.m.State() != vrrp.Master {
		t.Fatalf("%s did not become master: %v", in.cfg.Name, in.m.State())
	}
}

// vrrp_strict without accept: the VIPs (advertised and excluded) are in the
// drop set from becoming master until leaving it, and the table goes with
// the daemon. An instance with accept, and the address owner, never block.
func TestNoAcceptBlocksWhileMaster(t *testing.T) {
	fw := useFakeFirewall(t)
	d, clk := testDaemon(t, "global_defs {\n vrrp_strict\n nftables_priority -7\n}\n"+
		inst2("STRICT", 51, " priority 100\n virtual_ipaddress_excluded {\n  10.9.9.9/32\n }")+
		inst2("ACCEPT", 52, " priority 100\n version 3\n accept")+
		inst2("OWNER", 53, " priority 255"))
	d.setupFirewall()
	if fw.opens != 1 || fw.cfg.Priority != -7 || fw.cfg.TableName() != "keepalived" {
		t.Fatalf("firewall opened %d times with %+v, want once at setup (stale tables replaced)", fw.opens, fw.cfg)
	}
	strict, accept, owner := d.instances[0], d.instances[1], d.instances[2]
	if owner.m.State() != vrrp.Master {
		t.Fatalf("owner state %v", owner.m.State())
	}
	becomeMaster(t, d, clk, accept)
	if got := fw.state(); got != "map[]" {
		t.Fatalf("accept mode / owner blocked: %s", got)
	}
	becomeMaster(t, d, clk, strict)
	if got, want := fw.state(), "map[STRICT:10.0.0.100,10.9.9.9]"; got != want {
		t.Fatalf("master without accept: %s, want %s", got, want)
	}
	d.apply(strict, strict.m.Shutdown(clk.t))
	if got := fw.state(); got != "map[]" {
		t.Fatalf("after leaving master: %s", got)
	}
	d.closeFirewall()
	d.closeFirewall()
	if fw.closes != 1 {
		t.Fatalf("table closed %d times at stop, want once", fw.closes)
	}
}

// Without any instance that drops traffic halod never touches nftables;
// a reload that turns accept off on a master blocks its VIPs then, and one
// that turns it back on releases them.
func TestNoAcceptFollowsReload(t *testing.T) {
	fw := useFakeFirewall(t)
	acceptConf := inst2("V", 51, " priority 100\n accept")
	d, clk := testDaemon(t, acceptConf)
	d.setupFirewall()
	in := d.instances[0]
	becomeMaster(t, d, clk, in)
	if fw.opens != 0 {
		t.Fatalf("accept mode opened the firewall")
	}
	if err := d.reload(load(t, inst2("V", 51, " priority 100\n no_accept"))); err != nil {
		t.Fatal(err)
	}
	if in = d.instances[0]; in.m.State() != vrrp.Master {
		t.Fatalf("reload changed the state: %v", in.m.State())
	}
	if got, want := fw.state(), "map[V:10.0.0.100]"; got != want {
		t.Fatalf("reload to no_accept: %s, want %s", got, want)
	}
	if err := d.reload(load(t, inst2("V", 51, " priority 100\n no_accept\n virtual_ipaddress_excluded {\n  10.1.1.1/32\n }"))); err != nil {
		t.Fatal(err)
	}
	if got, want := fw.state(), "map[V:10.0.0.100,10.1.1.1]"; got != want {
		t.Fatalf("reload adding a VIP: %s, want %s", got, want)
	}
	if err := d.reload(load(t, acceptConf)); err != nil {
		t.Fatal(err)
	}
	if got := fw.state(); got != "map[]" {
		t.Fatalf("reload to accept: %s, want the VIPs released", got)
	}
}

// A firewall that cannot be opened is logged and retried at the next
// transition; the instance still becomes master.
func TestNoAcceptOpenFailure(t *testing.T) {
	fw := useFakeFirewall(t)
	fw.openErr = errors.New("no nftables")
	d, clk := testDaemon(t, inst2("V", 51, " priority 100\n no_accept"))
	d.setupFirewall()
	in := d.instances[0]
	becomeMaster(t, d, clk, in)
	if fw.opens != 2 || d.fw != nil {
		t.Fatalf("opens %d, want a retry at becoming master", fw.opens)
	}
}

// use_vmac opens the firewall at start (keepalived makes its table for the
// VMAC rules even without no_accept); a bound instance's VMAC is in the map
// with its lower interface, and goes when the instance is unbound.
func TestVMACInFirewall(t *testing.T) {
	fw := useFakeFirewall(t)
	d, _ := testDaemon(t, inst2("V", 51, " priority 100\n accept\n use_vmac"))
	d.setupFirewall()
	if fw.opens != 1 {
		t.Fatalf("use_vmac: firewall opened %d times, want once", fw.opens)
	}
	in := d.instances[0]
	if in.vmac != "vrrp.51" {
		t.Fatalf("vmac %q", in.vmac)
	}
	// The test interfaces do not exist: stand the loopback in for both
	// the VMAC and its lower interface.
	in.vmac, in.cfg.Interface = "lo", "lo"
	in.cs = &connState{}
	in.syncVMACFirewall()
	if got, want := fmt.Sprint(fw.vmacs), "map[V:[{ip 1 1}]]"; got != want {
		t.Fatalf("bound VMAC: %s, want %s", got, want)
	}
	// An address of the other family puts the VMAC in that table too.
	in.excluded = append(in.excluded, vip.Addr{Prefix: netip.MustParsePrefix("2001:db8::1/64"), Dev: "lo"})
	in.syncVMACFirewall()
	if got, want := fmt.Sprint(fw.vmacs), "map[V:[{ip 1 1} {ip6 1 1}]]"; got != want {
		t.Fatalf("VMAC with an IPv6 excluded VIP: %s, want %s", got, want)
	}
	in.cs = nil
	in.syncVMACFirewall()
	if len(fw.vmacs) != 0 {
		t.Fatalf("unbound VMAC still in the map: %v", fw.vmacs)
	}
}
