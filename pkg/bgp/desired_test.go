package bgp

import (
	"net/netip"
	"slices"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func vs(addr string, up bool) VirtualServer {
	return VirtualServer{Addr: netip.MustParseAddr(addr), QuorumUp: up}
}

func vip(addr string, master bool) VIP { return VIP{Addr: netip.MustParseAddr(addr), Master: master} }

func TestDesired(t *testing.T) {
	cases := []struct {
		name string
		st   State
		want []netip.Prefix
	}{
		{"quorum up announces host prefixes of both families",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true), vs("2001:db8::100", true)}},
			pfx("10.96.100.100/32", "2001:db8::100/128")},
		{"quorum lost withdraws only that address",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", false), vs("10.96.100.101", true)}},
			pfx("10.96.100.101/32")},
		{"one port without quorum withdraws the address",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true), vs("10.96.100.100", false)}},
			nil},
		{"two ports with quorum announce the address once",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true), vs("10.96.100.100", true)}},
			pfx("10.96.100.100/32")},
		{"VIP needs MASTER",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true), vs("10.96.100.101", true)},
				VIPs: []VIP{vip("10.96.100.100", false), vip("10.96.100.101", true)}},
			pfx("10.96.100.101/32")},
		{"VIP in two instances: MASTER of either is enough",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true)},
				VIPs: []VIP{vip("10.96.100.100", false), vip("10.96.100.100", true)}},
			pfx("10.96.100.100/32")},
		{"MASTER without quorum is not enough",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", false)}, VIPs: []VIP{vip("10.96.100.100", true)}},
			nil},
		{"a VIP that is no virtual server is not announced by default",
			State{VIPs: []VIP{vip("10.96.100.100", true)}},
			nil},
		{"drain withdraws everything",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true)}, Announce: pfx("192.0.2.0/24"), Drained: true},
			nil},
		{"announce list restricts to what it names",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", true), vs("10.96.100.101", true)},
				Announce: pfx("10.96.100.100/32")},
			pfx("10.96.100.100/32")},
		{"aggregate announced while one address inside is eligible",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", false), vs("10.96.100.101", true)},
				Announce: pfx("10.96.100.0/24")},
			pfx("10.96.100.0/24")},
		{"aggregate withdrawn when no address inside is eligible",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", false), vs("10.96.100.101", true)},
				VIPs: []VIP{vip("10.96.100.101", false)}, Announce: pfx("10.96.100.0/24")},
			nil},
		{"static prefix without virtual servers is announced",
			State{VirtualServers: []VirtualServer{vs("10.96.100.100", false)}, Announce: pfx("192.0.2.0/24", "10.96.100.100/32")},
			pfx("192.0.2.0/24")},
		{"static prefix covering a BACKUP VIP is not",
			State{VIPs: []VIP{vip("192.0.2.7", false)}, Announce: pfx("192.0.2.0/24")},
			nil},
		{"mapped addresses count as IPv4",
			State{VirtualServers: []VirtualServer{vs("::ffff:10.96.100.100", true)}, VIPs: []VIP{vip("10.96.100.100", false)}},
			nil},
		{"output sorted and without duplicates",
			State{VirtualServers: []VirtualServer{vs("10.0.0.3", true), vs("10.0.0.1", true), vs("10.0.0.2", true)},
				Announce: pfx("10.0.0.3/32", "10.0.0.1/32", "10.0.0.1/32")},
			pfx("10.0.0.1/32", "10.0.0.3/32")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Desired(c.st)
			if !slices.Equal(got, c.want) {
				t.Fatalf("Desired = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	add, del := Diff(pfx("10.0.0.1/32", "10.0.0.2/32"), pfx("10.0.0.2/32", "10.0.0.3/32", "2001:db8::1/128"))
	if !slices.Equal(add, pfx("10.0.0.3/32", "2001:db8::1/128")) || !slices.Equal(del, pfx("10.0.0.1/32")) {
		t.Fatalf("add %v del %v", add, del)
	}
	add, del = Diff(pfx("10.0.0.1/32"), pfx("10.0.0.1/32"))
	if add != nil || del != nil {
		t.Fatalf("same sets: add %v del %v", add, del)
	}
}
