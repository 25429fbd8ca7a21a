package caps

import (
	"testing"
)

func TestFor(t *testing.T) {
	for _, c := range []struct {
		name     string
		n        Needs
		keep     Set
		bounding Set
	}{
		{"vrrp only, no scripts", Needs{}, Of(NetAdmin, NetRaw), Of(NetAdmin, NetRaw)},
		{"xdp on a CAP_BPF kernel", Needs{XDP: true, KernelHasCapBPF: true},
			Of(NetAdmin, NetRaw, BPF, Perfmon), Of(NetAdmin, NetRaw, BPF, Perfmon)},
		{"xdp on an old kernel needs CAP_SYS_ADMIN", Needs{XDP: true},
			Of(NetAdmin, NetRaw, SysAdmin), Of(NetAdmin, NetRaw, SysAdmin)},
		{"scripts as script_user", Needs{Scripts: true, ScriptUsers: true},
			Of(NetAdmin, NetRaw, Kill, SetUID, SetGID), Of(NetAdmin, NetRaw, Kill, SetUID, SetGID)},
		{"root scripts keep the bounding set whole", Needs{Scripts: true, RootScripts: true},
			Of(NetAdmin, NetRaw, Kill), All},
		{"bgp listener on 179", Needs{LowPorts: true}, Of(NetAdmin, NetRaw, NetBindService), Of(NetAdmin, NetRaw, NetBindService)},
		{"a notify FIFO owned by another user", Needs{FIFOOwners: true}, Of(NetAdmin, NetRaw, Chown), Of(NetAdmin, NetRaw, Chown)},
	} {
		p := For(c.n)
		if p.Keep != c.keep || p.Bounding != c.bounding {
			t.Errorf("%s: keep %s bounding %x, want %s %x", c.name, p.Keep, uint64(p.Bounding), c.keep, uint64(c.bounding))
		}
		if p.Keep.Has(DACOverride) || (p.Keep.Has(Chown) && !c.n.FIFOOwners) {
			t.Errorf("%s: keeps a file capability: %s", c.name, p.Keep)
		}
	}
}

func TestSetString(t *testing.T) {
	if got := Of(NetRaw, NetAdmin, BPF).String(); got != "CAP_BPF,CAP_NET_ADMIN,CAP_NET_RAW" {
		t.Fatal(got)
	}
	if got := Cap(50).String(); got != "cap_50" {
		t.Fatal(got)
	}
}

func TestParseStatus(t *testing.T) {
	eff, prm, bnd, err := parseStatus("Name:\thalod\nCapInh:\t0000000000000000\nCapPrm:\t0000000000003000\nCapEff:\t0000000000003000\nCapBnd:\t000001ffffffffff\n")
	if err != nil {
		t.Fatal(err)
	}
	if eff != Of(NetAdmin, NetRaw) || prm != eff || bnd != Set(0x1ffffffffff) {
		t.Fatalf("eff %x prm %x bnd %x", eff, prm, bnd)
	}
	if _, _, _, err := parseStatus("CapEff:\tzz\nCapPrm:\t0\nCapBnd:\t0\n"); err == nil {
		t.Fatal("bad hex accepted")
	}
	if _, _, _, err := parseStatus("Name:\tx\n"); err == nil {
		t.Fatal("missing fields accepted")
	}
}
