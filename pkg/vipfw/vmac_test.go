package vipfw

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

// A VMAC makes its family's map and rules once, and its element; a second
// VMAC adds only its element; a recreated VMAC (new index) swaps the
// element; the last one gone leaves the table for Close, which removes
// tables made for VMACs alone.
func TestPlanVMAC(t *testing.T) {
	p := NewPlan(Config{})
	p1, got := p.SetVMAC("V4", []VMACLink{{Family: IPv4, Ifindex: 4, Base: 3}})
	want := []string{"add-vmac-table ip", "add-vmac-elems ip {4:3}"}
	if !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	if len(p.VMACs()) != 0 {
		t.Fatal("SetVMAC changed the plan it was called on")
	}
	p2, got := p1.SetVMAC("V6", []VMACLink{{Family: IPv6, Ifindex: 5, Base: 3}})
	if want := []string{"add-vmac-table ip6", "add-vmac-elems ip6 {5:3}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("ops %q, want %q", ops(t, got), want)
	}
	p3, got := p2.SetVMAC("V4b", []VMACLink{{Family: IPv4, Ifindex: 6, Base: 3}})
	if want := []string{"add-vmac-elems ip {6:3}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("second VMAC: ops %q, want %q", ops(t, got), want)
	}
	p4, got := p3.SetVMAC("V4", []VMACLink{{Family: IPv4, Ifindex: 9, Base: 3}})
	if want := []string{"del-vmac-elems ip {4:3}", "add-vmac-elems ip {9:3}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("recreated VMAC: ops %q, want %q", ops(t, got), want)
	}
	_, got = p4.SetVMAC("V4", []VMACLink{{Family: IPv4, Ifindex: 9, Base: 3}})
	if len(got) != 0 {
		t.Fatalf("unchanged VMAC: ops %q", ops(t, got))
	}
	p5, got := p4.SetVMAC("V4", nil)
	if want := []string{"del-vmac-elems ip {9:3}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("VMAC gone: ops %q, want %q", ops(t, got), want)
	}
	// An instance with addresses of both families has a link in each table.
	_, got = p5.SetVMAC("V4", []VMACLink{{Family: IPv4, Ifindex: 9, Base: 3}, {Family: IPv6, Ifindex: 9, Base: 3}})
	if want := []string{"add-vmac-elems ip {9:3}", "add-vmac-elems ip6 {9:3}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("both families: ops %q, want %q", ops(t, got), want)
	}
	// no_accept on a family whose table the VMAC made still adds its part.
	p6, got := p5.Block("V4b", elems(Config{}, v("10.0.0.1")))
	if want := []string{"add-table ip", "add-elems ip vips {10.0.0.1}"}; !reflect.DeepEqual(ops(t, got), want) {
		t.Fatalf("no_accept after VMAC: ops %q, want %q", ops(t, got), want)
	}
	if _, got := p6.Close(); !reflect.DeepEqual(ops(t, got), []string{"del-table ip", "del-table ip6"}) {
		t.Fatalf("Close: %q", ops(t, got))
	}
}

// The rules are keepalived's, expression for expression (as `nft
// --debug=netlink` showed them for 2.2.7): the register use decides how nft
// prints them.
func TestVMACRules(t *testing.T) {
	rs := VMACRuleset(Config{}, IPv4)
	if len(rs.Chains) != 1 || rs.Chains[0].Name != ChainOut || len(rs.Sets) != 1 || !rs.Sets[0].Set.IsMap ||
		rs.Sets[0].Set.Name != SetVMACMap || len(rs.Rules) != 1 {
		t.Fatalf("ip ruleset: %+v", rs)
	}
	want := "[payload nh+9/1 r1] [cmp r1 02] [payload nh+16/4 r1] [meta 27 r2] [cmp r2 6d6163766c616e000000000000000000] " +
		"[meta 5 r2] [lookup r2 vmac_map d2] [dup a1 d2] [drop]"
	if got := exprString(rs.Rules[0].Exprs); got != want {
		t.Errorf("ip rule:\n got %s\nwant %s", got, want)
	}
	rs = VMACRuleset(Config{Counters: true}, IPv6)
	if len(rs.Sets) != 2 || rs.Sets[1].Set.Name != SetVMAC || len(rs.Rules) != 2 {
		t.Fatalf("ip6 ruleset: %+v", rs)
	}
	want = "[meta 16 r1] [cmp r1 3a] [payload th+0/1 r1] [cmp r1 8f] [payload nh+24/16 r1] [meta 27 r2] " +
		"[cmp r2 6d6163766c616e000000000000000000] [meta 5 r2] [lookup r2 vmac_map d2] [dup a1 d2] [counter] [drop]"
	if got := exprString(rs.Rules[0].Exprs); got != want {
		t.Errorf("ip6 MLD rule:\n got %s\nwant %s", got, want)
	}
	want = "[meta 16 r1] [cmp r1 3a] [payload th+0/1 r1] [cmp r1 85] [meta 27 r2] " +
		"[cmp r2 6d6163766c616e000000000000000000] [meta 5 r2] [lookup r2 vmac_set] [counter] [drop]"
	if got := exprString(rs.Rules[1].Exprs); got != want {
		t.Errorf("ip6 RS rule:\n got %s\nwant %s", got, want)
	}
}

// exprString renders the expressions the way `nft --debug=netlink` lists
// them, tersely.
func exprString(ex []expr.Any) string {
	var b strings.Builder
	for _, e := range ex {
		switch e := e.(type) {
		case *expr.Payload:
			base := "nh"
			if e.Base == expr.PayloadBaseTransportHeader {
				base = "th"
			}
			fmt.Fprintf(&b, "[payload %s+%d/%d r%d] ", base, e.Offset, e.Len, e.DestRegister)
		case *expr.Cmp:
			fmt.Fprintf(&b, "[cmp r%d %x] ", e.Register, e.Data)
		case *expr.Meta:
			fmt.Fprintf(&b, "[meta %d r%d] ", e.Key, e.Register)
		case *expr.Lookup:
			if e.IsDestRegSet {
				fmt.Fprintf(&b, "[lookup r%d %s d%d] ", e.SourceRegister, e.SetName, e.DestRegister)
			} else {
				fmt.Fprintf(&b, "[lookup r%d %s] ", e.SourceRegister, e.SetName)
			}
		case *expr.Dup:
			fmt.Fprintf(&b, "[dup a%d d%d] ", e.RegAddr, e.RegDev)
		case *expr.Counter:
			b.WriteString("[counter] ")
		case *expr.Verdict:
			fmt.Fprintf(&b, "[%s] ", map[expr.VerdictKind]string{expr.VerdictDrop: "drop", expr.VerdictAccept: "accept"}[e.Kind])
		default:
			fmt.Fprintf(&b, "[%T] ", e)
		}
	}
	return strings.TrimSpace(b.String())
}
