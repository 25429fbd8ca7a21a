package vipfw

import (
	"encoding/binary"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// With use_vmac keepalived 2.2.7 adds to the same tables, whether or not
// no_accept applies (docs/keepalived.md#use-vmac-nftables):
//
//	map vmac_map { type iface_index : iface_index }   VMAC -> its lower interface
//	set vmac_set { type iface_index }                 ip6 only
//	chain out (output hook):
//	  ip protocol igmp meta oifkind "macvlan" dup to ip daddr device oif map @vmac_map drop
//	  icmpv6 type mld2-listener-report meta oifkind "macvlan" dup to ip6 daddr device oif map @vmac_map drop
//	  icmpv6 type nd-router-solicit meta oifkind "macvlan" oif @vmac_set drop
//
// Group-membership reports (IGMP, MLDv2) leave by the lower interface
// instead of the macvlan, so the switch learns the virtual MAC only from
// VRRP traffic, and the VMAC sends no router solicitations.

// Set names of the use_vmac objects, as keepalived's.
const (
	SetVMACMap = "vmac_map"
	SetVMAC    = "vmac_set"
)

// ICMPv6 types the VMAC rules match.
const (
	mld2Report    = 143
	routerSolicit = 133
)

// VMACLink is a use_vmac interface and the interface it sits on, in the
// table of the instance's family.
type VMACLink struct {
	Family  Family
	Ifindex uint32 // the macvlan
	Base    uint32 // its lower interface
}

// SetVMAC makes owner's VMAC links ls (none: it has no VMAC) and returns
// the new plan and the steps to get there. A VMAC has a link in the table
// of each family its instance has addresses of: keepalived 2.2.7 put an
// IPv4 instance's VMAC in the ip6 map too once it had an IPv6
// virtual_ipaddress_excluded. A family's map, set and rules are made with
// its first link; they go with the table.
func (p *Plan) SetVMAC(owner string, ls []VMACLink) (*Plan, []Op) {
	before := p.links()
	n := p.clone()
	if len(ls) == 0 {
		delete(n.vmacs, owner)
	} else {
		n.vmacs[owner] = slices.Clone(ls)
	}
	after := n.links()
	var add, del []VMACLink
	for _, x := range after {
		if !slices.Contains(before, x) {
			add = append(add, x)
		}
	}
	for _, x := range before {
		if !slices.Contains(after, x) {
			del = append(del, x)
		}
	}
	var out []Op
	for _, x := range add {
		if !n.vmacTables[x.Family] {
			n.vmacTables[x.Family] = true
			out = append(out, Op{Kind: OpAddVMACTable, Family: x.Family})
		}
	}
	for _, f := range []Family{IPv4, IPv6} {
		if ls := ofFamily(del, f); len(ls) > 0 {
			out = append(out, Op{Kind: OpDelVMACElems, Family: f, Links: ls})
		}
	}
	for _, f := range []Family{IPv4, IPv6} {
		if ls := ofFamily(add, f); len(ls) > 0 {
			out = append(out, Op{Kind: OpAddVMACElems, Family: f, Links: ls})
		}
	}
	return n, out
}

// VMACs lists the links in the map, sorted.
func (p *Plan) VMACs() []VMACLink { return p.links() }

func (p *Plan) links() []VMACLink {
	var out []VMACLink
	for _, ls := range p.vmacs {
		for _, l := range ls {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.SortFunc(out, func(a, b VMACLink) int {
		if a.Family != b.Family {
			return int(a.Family) - int(b.Family)
		}
		if a.Ifindex != b.Ifindex {
			if a.Ifindex < b.Ifindex {
				return -1
			}
			return 1
		}
		return int(int64(a.Base) - int64(b.Base))
	})
	return out
}

func ofFamily(ls []VMACLink, f Family) []VMACLink {
	var out []VMACLink
	for _, l := range ls {
		if l.Family == f {
			out = append(out, l)
		}
	}
	return out
}

// VMACRuleset is what OpAddVMACTable creates: the table and its output
// chain if they do not exist yet (keepalived's chain, so a later no_accept
// table shares it), the map (and for ip6 the set), and the rules.
func VMACRuleset(cfg Config, f Family) Ruleset {
	t := table(cfg, f)
	prio := nftables.ChainPriority(cfg.Priority)
	out := &nftables.Chain{Table: t, Name: ChainOut, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookOutput,
		Priority: &prio, Policy: ptr(nftables.ChainPolicyAccept)}
	rs := Ruleset{Table: t, Chains: []*nftables.Chain{out}}
	m := &nftables.Set{Table: t, Name: SetVMACMap, IsMap: true, KeyType: nftables.TypeIFIndex, DataType: nftables.TypeIFIndex,
		KeyByteOrder: binaryutil.NativeEndian}
	rs.Sets = append(rs.Sets, SetSpec{Set: m})
	if f == IPv4 {
		// ip protocol igmp ... dup to ip daddr device oif map @vmac_map drop
		match := []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_IGMP}},
		}
		rs.Rules = append(rs.Rules, &nftables.Rule{Table: t, Chain: out, Exprs: dupToBase(cfg, match, ip4Dst, 4)})
		return rs
	}
	rs.Sets = append(rs.Sets, SetSpec{Set: &nftables.Set{Table: t, Name: SetVMAC, KeyType: nftables.TypeIFIndex, KeyByteOrder: binaryutil.NativeEndian}})
	// icmpv6 type mld2-listener-report ... dup to ip6 daddr device oif map @vmac_map drop
	rs.Rules = append(rs.Rules, &nftables.Rule{Table: t, Chain: out, Exprs: dupToBase(cfg, icmp6Type(mld2Report), ip6Dst, 16)})
	// icmpv6 type nd-router-solicit meta oifkind "macvlan" oif @vmac_set drop
	rs.Rules = append(rs.Rules, &nftables.Rule{Table: t, Chain: out, Exprs: verdict(cfg, append(icmp6Type(routerSolicit),
		oifKindMacvlan(),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 2, Data: macvlanKind()},
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 2},
		&expr.Lookup{SourceRegister: 2, SetName: SetVMAC},
	), expr.VerdictDrop, "")})
	return rs
}

// dupToBase completes match with the destination address in register 1,
// the macvlan check, and a copy sent out of the lower interface the map
// gives for the output interface, the original dropped; the register use is
// keepalived's, so nft lists the rule the same.
func dupToBase(cfg Config, match []expr.Any, dst, n uint32) []expr.Any {
	ex := append(match,
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: dst, Len: n},
		oifKindMacvlan(),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 2, Data: macvlanKind()},
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 2},
		&expr.Lookup{SourceRegister: 2, DestRegister: 2, IsDestRegSet: true, SetName: SetVMACMap},
		&expr.Dup{RegAddr: 1, RegDev: 2, IsRegDevSet: true},
	)
	return verdict(cfg, ex, expr.VerdictDrop, "")
}

func icmp6Type(typ byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{typ}},
	}
}

// metaOIFKind is NFT_META_OIFKIND, which google/nftables does not name.
const metaOIFKind expr.MetaKey = 27

func oifKindMacvlan() *expr.Meta { return &expr.Meta{Key: metaOIFKind, Register: 2} }

// macvlanKind is "macvlan" as the kernel compares an interface kind: NUL
// padded to IFNAMSIZ.
func macvlanKind() []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, "macvlan")
	return b
}

// vmacElems are the map (and, for ip6, set) elements of links.
func vmacElems(ls []VMACLink) (mapEls, setEls []nftables.SetElement) {
	for _, l := range ls {
		k := binary.NativeEndian.AppendUint32(nil, l.Ifindex)
		mapEls = append(mapEls, nftables.SetElement{Key: k, Val: binary.NativeEndian.AppendUint32(nil, l.Base)})
		if l.Family == IPv6 {
			setEls = append(setEls, nftables.SetElement{Key: k})
		}
	}
	return mapEls, setEls
}
