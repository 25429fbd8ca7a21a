package vipfw

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The objects below are plain values describing keepalived's ruleset; the
// Firewall hands them to the netlink connection. Building them apart from
// the connection lets the tests read the exact expressions without root.

// Chain names, as keepalived's.
const (
	ChainIn           = "in"
	ChainOut          = "out"
	ChainInLinkLocal  = "in_link_local"
	ChainOutLinkLocal = "out_link_local"
)

// Byte offsets in the IPv4 and IPv6 headers.
const (
	ip4Src = 12
	ip4Dst = 16
	ip6Src = 8
	ip6Dst = 24
)

// ND message types keepalived lets through before the drop, so the master
// still answers neighbour solicitations for its VIPs.
const (
	ndSolicit = 135
	ndAdvert  = 136
)

// Ruleset is one family's table and everything in it.
type Ruleset struct {
	Table  *nftables.Table
	Chains []*nftables.Chain
	Sets   []SetSpec
	Rules  []*nftables.Rule
}

// SetSpec is a set and the elements it is created with.
type SetSpec struct {
	Set   *nftables.Set
	Elems []nftables.SetElement
}

func table(cfg Config, f Family) *nftables.Table {
	fam := nftables.TableFamilyIPv4
	if f == IPv6 {
		fam = nftables.TableFamilyIPv6
	}
	return &nftables.Table{Family: fam, Name: cfg.TableName()}
}

// TableRuleset is what OpAddTable creates.
func TableRuleset(cfg Config, f Family) Ruleset {
	t := table(cfg, f)
	prio := nftables.ChainPriority(cfg.Priority)
	hooked := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return &nftables.Chain{Table: t, Name: name, Type: nftables.ChainTypeFilter, Hooknum: hook,
			Priority: &prio, Policy: ptr(nftables.ChainPolicyAccept)}
	}
	in, out := hooked(ChainIn, nftables.ChainHookInput), hooked(ChainOut, nftables.ChainHookOutput)
	rs := Ruleset{Table: t, Chains: []*nftables.Chain{out, in}}
	keyType := nftables.TypeIPAddr
	src, dst, n := uint32(ip4Src), uint32(ip4Dst), uint32(4)
	if f == IPv6 {
		keyType = nftables.TypeIP6Addr
		src, dst, n = ip6Src, ip6Dst, 16
	}
	vips := &nftables.Set{Table: t, Name: SetVIPs, KeyType: keyType}
	rs.Sets = append(rs.Sets, SetSpec{Set: vips})
	if f == IPv6 {
		inLL := &nftables.Chain{Table: t, Name: ChainInLinkLocal}
		outLL := &nftables.Chain{Table: t, Name: ChainOutLinkLocal}
		rs.Chains = append(rs.Chains, inLL, outLL)
		nd := &nftables.Set{Table: t, Name: SetND, KeyType: nftables.TypeICMP6Type, Constant: true}
		rs.Sets = append(rs.Sets, SetSpec{Set: nd, Elems: []nftables.SetElement{{Key: []byte{ndSolicit}}, {Key: []byte{ndAdvert}}}})
		// icmpv6 type @neighbor-discovery accept; ip6 daddr fe80::/10 goto in_link_local
		for _, c := range []struct {
			chain  *nftables.Chain
			off    uint32
			target string
		}{{in, dst, ChainInLinkLocal}, {out, src, ChainOutLinkLocal}} {
			rs.Rules = append(rs.Rules,
				&nftables.Rule{Table: t, Chain: c.chain, Exprs: ndAccept(cfg)},
				&nftables.Rule{Table: t, Chain: c.chain, Exprs: linkLocalGoto(cfg, c.off, c.target)})
		}
	}
	// ip daddr @vips drop; ip saddr @vips drop
	rs.Rules = append(rs.Rules,
		&nftables.Rule{Table: t, Chain: in, Exprs: lookupDrop(cfg, dst, n, SetVIPs, nil)},
		&nftables.Rule{Table: t, Chain: out, Exprs: lookupDrop(cfg, src, n, SetVIPs, nil)})
	return rs
}

// LinkLocalRuleset is what OpAddLinkLocal creates: the set keyed by address
// and interface, and a drop rule in each link-local chain.
func LinkLocalRuleset(cfg Config, set string) Ruleset {
	t := table(cfg, IPv6)
	byName := set == SetLinkLocalName
	ifType := nftables.TypeIFIndex
	inKey, outKey := expr.MetaKeyIIF, expr.MetaKeyOIF
	if byName {
		ifType = nftables.TypeIFName
		inKey, outKey = expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME
	}
	s := &nftables.Set{Table: t, Name: set, KeyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, ifType),
		Concatenation: true}
	inLL := &nftables.Chain{Table: t, Name: ChainInLinkLocal}
	outLL := &nftables.Chain{Table: t, Name: ChainOutLinkLocal}
	return Ruleset{Table: t, Sets: []SetSpec{{Set: s}}, Rules: []*nftables.Rule{
		{Table: t, Chain: inLL, Exprs: lookupDrop(cfg, ip6Dst, 16, set, &expr.Meta{Key: inKey, Register: 2})},
		{Table: t, Chain: outLL, Exprs: lookupDrop(cfg, ip6Src, 16, set, &expr.Meta{Key: outKey, Register: 2})},
	}}
}

// lookupDrop: the address at off (and, for link-local sets, the interface
// in register 2 right after it, forming the concatenated key) looked up in
// set, then drop.
func lookupDrop(cfg Config, off, n uint32, set string, iface *expr.Meta) []expr.Any {
	ex := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if iface != nil {
		ex = append(ex, iface)
	}
	ex = append(ex, &expr.Lookup{SourceRegister: 1, SetName: set})
	return verdict(cfg, ex, expr.VerdictDrop, "")
}

func ndAccept(cfg Config) []expr.Any {
	return verdict(cfg, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Lookup{SourceRegister: 1, SetName: SetND},
	}, expr.VerdictAccept, "")
}

func linkLocalGoto(cfg Config, off uint32, chain string) []expr.Any {
	mask := netip.MustParsePrefix("fe80::/10")
	return verdict(cfg, []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 16},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: prefixMask(mask.Bits(), 16), Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mask.Addr().AsSlice()},
	}, expr.VerdictGoto, chain)
}

func verdict(cfg Config, ex []expr.Any, kind expr.VerdictKind, chain string) []expr.Any {
	if cfg.Counters {
		ex = append(ex, &expr.Counter{})
	}
	return append(ex, &expr.Verdict{Kind: kind, Chain: chain})
}

func prefixMask(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// ElemKey is the set key of e: the address, then (link-local) the
// interface index in host byte order or the name NUL-padded to IFNAMSIZ,
// as `nft` writes them.
func ElemKey(e Elem) []byte {
	k := e.Addr.AsSlice()
	switch e.Set() {
	case SetLinkLocal:
		k = binary.NativeEndian.AppendUint32(k, e.Ifindex)
	case SetLinkLocalName:
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, e.Ifname)
		k = append(k, name...)
	}
	return k
}

func ptr[T any](v T) *T { return &v }
