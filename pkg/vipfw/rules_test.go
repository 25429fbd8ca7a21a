package vipfw

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

func ruleIn(rs Ruleset, chain string) [][]expr.Any {
	var out [][]expr.Any
	for _, r := range rs.Rules {
		if r.Chain.Name == chain {
			out = append(out, r.Exprs)
		}
	}
	return out
}

// IPv4: `ip daddr @vips drop` in the input chain, `ip saddr @vips drop` in
// the output chain, both hooked at the configured priority, policy accept.
func TestTableRulesetIPv4(t *testing.T) {
	rs := TableRuleset(Config{Priority: -1}, IPv4)
	if rs.Table.Family != nftables.TableFamilyIPv4 || rs.Table.Name != "keepalived" {
		t.Fatalf("table %+v", rs.Table)
	}
	for _, c := range rs.Chains {
		if *c.Priority != -1 || *c.Policy != nftables.ChainPolicyAccept || c.Type != nftables.ChainTypeFilter {
			t.Errorf("chain %s: %+v", c.Name, c)
		}
	}
	in := ruleIn(rs, ChainIn)
	want := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: "vips"},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	if len(in) != 1 || !reflect.DeepEqual(in[0], want) {
		t.Fatalf("in rules %#v, want one: %#v", in, want)
	}
	out := ruleIn(rs, ChainOut)
	if len(out) != 1 || out[0][0].(*expr.Payload).Offset != 12 {
		t.Fatalf("out rule must match the source address: %#v", out)
	}
	if len(rs.Sets) != 1 || rs.Sets[0].Set.KeyType != nftables.TypeIPAddr {
		t.Fatalf("sets %+v", rs.Sets)
	}
}

// IPv6: neighbour discovery is accepted first (the master must still answer
// NS for its VIPs), link-local destinations go to their own chain, then the
// drop; nftables_counters puts a counter before every verdict.
func TestTableRulesetIPv6(t *testing.T) {
	rs := TableRuleset(Config{Counters: true, Table: "t"}, IPv6)
	if rs.Table.Family != nftables.TableFamilyIPv6 || rs.Table.Name != "t" {
		t.Fatalf("table %+v", rs.Table)
	}
	in := ruleIn(rs, ChainIn)
	if len(in) != 3 {
		t.Fatalf("in chain has %d rules, want 3", len(in))
	}
	verdicts := []expr.VerdictKind{expr.VerdictAccept, expr.VerdictGoto, expr.VerdictDrop}
	for i, r := range in {
		if _, ok := r[len(r)-2].(*expr.Counter); !ok {
			t.Errorf("rule %d has no counter", i)
		}
		if v := r[len(r)-1].(*expr.Verdict); v.Kind != verdicts[i] {
			t.Errorf("rule %d verdict %v, want %v", i, v.Kind, verdicts[i])
		}
	}
	if l := in[0][3].(*expr.Lookup); l.SetName != SetND {
		t.Errorf("first rule looks up %s", l.SetName)
	}
	if v := in[1][len(in[1])-1].(*expr.Verdict); v.Chain != ChainInLinkLocal {
		t.Errorf("goto %q", v.Chain)
	}
	if m := in[1][1].(*expr.Bitwise).Mask; !bytes.Equal(m[:2], []byte{0xff, 0xc0}) || m[2] != 0 {
		t.Errorf("link-local mask %x, want fe80::/10", m)
	}
	var nd *SetSpec
	for i := range rs.Sets {
		if rs.Sets[i].Set.Name == SetND {
			nd = &rs.Sets[i]
		}
	}
	if nd == nil || len(nd.Elems) != 2 || nd.Elems[0].Key[0] != 135 || nd.Elems[1].Key[0] != 136 || !nd.Set.Constant {
		t.Fatalf("neighbor-discovery set %+v", nd)
	}
}

func TestLinkLocalRuleset(t *testing.T) {
	for _, tc := range []struct {
		set  string
		key  expr.MetaKey
		klen uint32
	}{{SetLinkLocal, expr.MetaKeyIIF, 20}, {SetLinkLocalName, expr.MetaKeyIIFNAME, 32}} {
		rs := LinkLocalRuleset(Config{}, tc.set)
		if s := rs.Sets[0].Set; s.Name != tc.set || s.KeyType.Bytes != tc.klen {
			t.Errorf("%s: set %+v", tc.set, s)
		}
		in := ruleIn(rs, ChainInLinkLocal)
		if len(in) != 1 || in[0][1].(*expr.Meta).Key != tc.key || in[0][1].(*expr.Meta).Register != 2 {
			t.Errorf("%s: in_link_local rule %#v", tc.set, in)
		}
		if len(rs.Chains) != 0 {
			t.Errorf("%s: chains created again", tc.set)
		}
	}
}

func TestElemKey(t *testing.T) {
	if k := ElemKey(Elem{Addr: netip.MustParseAddr("10.1.2.3")}); !bytes.Equal(k, []byte{10, 1, 2, 3}) {
		t.Errorf("v4 key %x", k)
	}
	k := ElemKey(Elem{Addr: netip.MustParseAddr("fe80::1"), Ifindex: 0x01020304})
	if len(k) != 20 || k[0] != 0xfe || k[15] != 1 {
		t.Errorf("link-local key %x", k)
	}
	k = ElemKey(Elem{Addr: netip.MustParseAddr("fe80::1"), Ifname: "eth0"})
	if len(k) != 32 || string(k[16:20]) != "eth0" || k[20] != 0 {
		t.Errorf("link-local name key %x", k)
	}
}

// fakeNft answers like the kernel: no stale table, and batches acked
// unless fail says otherwise. It records the nftables message types of
// every batch.
type fakeNft struct {
	fail    func(types []uint16) bool
	batches [][]uint16
}

func (f *fakeNft) dial(req []netlink.Message) ([]netlink.Message, error) {
	if len(req) == 0 {
		return nil, nil // a read with nothing sent: no more replies
	}
	var types []uint16
	for _, m := range req {
		types = append(types, uint16(m.Header.Type)&0xff)
	}
	if len(req) == 1 && types[0] == unix.NFT_MSG_GETTABLE {
		return nltest.Error(int(unix.ENOENT), req)
	}
	f.batches = append(f.batches, types)
	if f.fail != nil && f.fail(types) {
		return nltest.Error(int(unix.EPERM), req[1:2])
	}
	return req, nil
}

func has(types []uint16, t uint16) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// A batch the kernel refuses leaves the Firewall's state as it was, so the
// next attempt creates the table again rather than assuming it exists.
func TestFirewallFailedBatchKeepsState(t *testing.T) {
	fake := &fakeNft{}
	conn, err := nftables.New(nftables.WithTestDial(fake.dial))
	if err != nil {
		t.Fatal(err)
	}
	fw, err := Open(Config{}, conn, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	fake.fail = func(types []uint16) bool { return true }
	if err := fw.Block("VI_1", []VIP{v("10.0.0.1")}); err == nil {
		t.Fatal("refused batch reported success")
	}
	if b := fw.Blocked(); len(b) != 0 {
		t.Fatalf("blocked after a failed batch: %v", b)
	}
	fake.fail = nil
	fake.batches = nil
	if err := fw.Block("VI_1", []VIP{v("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	if len(fake.batches) != 1 || !has(fake.batches[0], unix.NFT_MSG_NEWTABLE) || !has(fake.batches[0], unix.NFT_MSG_NEWSETELEM) {
		t.Fatalf("retry batches %v: want the table and the element in one batch", fake.batches)
	}
	fake.batches = nil
	if err := fw.Close(); err != nil && !errors.Is(err, unix.EBADF) {
		t.Fatal(err)
	}
	if len(fake.batches) != 1 || !has(fake.batches[0], unix.NFT_MSG_DELTABLE) {
		t.Fatalf("close batches %v: want the table deleted", fake.batches)
	}
	if err := fw.Block("VI_1", []VIP{v("10.0.0.1")}); err == nil {
		t.Fatal("Block after Close succeeded")
	}
}
