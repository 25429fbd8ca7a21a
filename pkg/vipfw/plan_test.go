package vipfw

import (
	"net/netip"
	"reflect"
	"testing"
)

func ops(t *testing.T, got []Op) []string {
	t.Helper()
	out := make([]string, len(got))
	for i, o := range got {
		out[i] = o.String()
	}
	return out
}

func elems(cfg Config, vips ...VIP) []Elem {
	var out []Elem
	for _, v := range vips {
		out = append(out, ElemOf(cfg, v))
	}
	return out
}

func v(s string) VIP { return VIP{Addr: netip.MustParseAddr(s)} }

func TestPlanBlockCreatesTablesOnceAndAddsElements(t *testing.T) {
	cfg := Config{}
	p := NewPlan(cfg)
	p1, got := p.Block("VI_1", elems(cfg, v("10.0.0.2"), v("10.0.0.1"), v("2001:db8::1"), v("10.0.0.1")))
	want := []string{"add-table ip", "add-table ip6", "add-elems ip vips {10.0.0.1, 10.0.0.2}", "add-elems ip6 vips {2001:db8::1}"}
	if !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	if len(p.Blocked()) != 0 {
		t.Fatal("Block changed the plan it was called on")
	}
	// A second instance: the tables exist, only its element is added.
	p2, got := p1.Block("VI_2", elems(cfg, v("10.0.0.9")))
	if want := []string{"add-elems ip vips {10.0.0.9}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	// VI_1 leaves MASTER: its elements go, VI_2's stay, the tables stay.
	p3, got := p2.Unblock("VI_1")
	want = []string{"del-elems ip vips {10.0.0.1, 10.0.0.2}", "del-elems ip6 vips {2001:db8::1}"}
	if !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	if b := p3.Blocked(); len(b) != 1 || b[0].Addr.String() != "10.0.0.9" {
		t.Fatalf("blocked %v, want only 10.0.0.9", b)
	}
	// Stop: both tables deleted, nothing blocked.
	p4, got := p3.Close()
	if want := []string{"del-table ip", "del-table ip6"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	if len(p4.Blocked()) != 0 {
		t.Fatal("closed plan still blocks")
	}
}

// The same VIP in two instances stays dropped until both release it.
func TestPlanSharedVIPIsReferenceCounted(t *testing.T) {
	cfg := Config{}
	p, _ := NewPlan(cfg).Block("A", elems(cfg, v("10.0.0.1")))
	p, got := p.Block("B", elems(cfg, v("10.0.0.1")))
	if len(got) != 0 {
		t.Fatalf("second owner of a blocked VIP: ops %q, want none", ops(t, got))
	}
	p, got = p.Unblock("A")
	if len(got) != 0 {
		t.Fatalf("released by one of two owners: ops %q, want none", ops(t, got))
	}
	if o := p.Owners(ElemOf(cfg, v("10.0.0.1"))); !reflect.DeepEqual(o, []string{"B"}) {
		t.Fatalf("owners %v", o)
	}
	_, got = p.Unblock("B")
	if want := []string{"del-elems ip vips {10.0.0.1}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
}

// Block replaces an owner's set: a reload that changes a master's VIPs adds
// and removes only the difference.
func TestPlanBlockReplacesOwnersSet(t *testing.T) {
	cfg := Config{}
	p, _ := NewPlan(cfg).Block("A", elems(cfg, v("10.0.0.1"), v("10.0.0.2")))
	_, got := p.Block("A", elems(cfg, v("10.0.0.2"), v("10.0.0.3")))
	want := []string{"add-elems ip vips {10.0.0.3}", "del-elems ip vips {10.0.0.1}"}
	if !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
}

// Link-local IPv6 VIPs are keyed with their interface, by index unless the
// instance asks for names (dont_track_primary) and nftables_ifindex is off.
func TestPlanLinkLocal(t *testing.T) {
	ll := VIP{Addr: netip.MustParseAddr("fe80::1"), Dev: "eth0", Ifindex: 7}
	byName := ll
	byName.ByName = true
	if e := ElemOf(Config{}, ll); e.Set() != SetLinkLocal || e.Ifindex != 7 || e.String() != "fe80::1 . 7" {
		t.Fatalf("by index: %+v in %s", e, e.Set())
	}
	if e := ElemOf(Config{}, byName); e.Set() != SetLinkLocalName || e.Ifname != "eth0" {
		t.Fatalf("by name: %+v in %s", e, e.Set())
	}
	if e := ElemOf(Config{IfIndex: true}, byName); e.Set() != SetLinkLocal {
		t.Fatalf("nftables_ifindex must key by index: %+v", e)
	}
	if e := ElemOf(Config{}, VIP{Addr: netip.MustParseAddr("2001:db8::1"), Ifindex: 7}); e.Set() != SetVIPs || e.Ifindex != 0 {
		t.Fatalf("global IPv6 keyed by interface: %+v", e)
	}
	if e := ElemOf(Config{}, VIP{Addr: netip.MustParseAddr("::ffff:10.0.0.1")}); e.Family() != IPv4 {
		t.Fatalf("v4-mapped address not in the ip table: %+v", e)
	}
	cfg := Config{}
	p, got := NewPlan(cfg).Block("A", elems(cfg, ll, byName))
	// Created in the order of the VIPs, as keepalived does.
	want := []string{"add-table ip6", "add-link-local ip6 vips_link_local", "add-link-local ip6 vips_link_local_name",
		"add-elems ip6 vips_link_local {fe80::1 . 7}", "add-elems ip6 vips_link_local_name {fe80::1 . eth0}"}
	if !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	if _, got := NewPlan(cfg).Block("A", elems(cfg, byName, ll)); got[1].Set != SetLinkLocalName || got[2].Set != SetLinkLocal {
		t.Fatalf("sets not made in VIP order: %q", ops(t, got))
	}
	_, got = p.Block("B", elems(cfg, VIP{Addr: netip.MustParseAddr("fe80::2"), Dev: "eth1", Ifindex: 8}))
	if want := []string{"add-elems ip6 vips_link_local {fe80::2 . 8}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("set created twice: ops %q, want %q", ops(t, got), want)
	}
}

func TestPlanStartDeletesStaleTablesOfBothFamilies(t *testing.T) {
	got := NewPlan(Config{Table: "x"}).Start()
	if want := []string{"del-stale ip", "del-stale ip6"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	if (Config{}).TableName() != "keepalived" || (Config{Table: "x"}).TableName() != "x" {
		t.Fatal("table name")
	}
}
