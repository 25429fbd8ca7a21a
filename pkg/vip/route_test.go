package vip

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRoute(t *testing.T) {
	cases := []struct {
		in   string
		want Route
	}{
		{"192.168.77.0/24 via 10.0.0.254 dev eth0", Route{Dst: netip.MustParsePrefix("192.168.77.0/24"), Via: netip.MustParseAddr("10.0.0.254"), Dev: "eth0"}},
		{"192.168.78.0/24 dev eth1 table 100 metric 5", Route{Dst: netip.MustParsePrefix("192.168.78.0/24"), Dev: "eth1", Table: 100, Metric: 5}},
		{"src 10.0.0.100 to 192.168.79.0/24", Route{Dst: netip.MustParsePrefix("192.168.79.0/24"), Src: netip.MustParseAddr("10.0.0.100"), Dev: "vrrp0"}},
		{"2001:db8::/64 via fe80::1 dev eth0 metric 7", Route{Dst: netip.MustParsePrefix("2001:db8::/64"), Via: netip.MustParseAddr("fe80::1"), Dev: "eth0", Metric: 7}},
		{"blackhole 10.9.0.0/16 table main", Route{Dst: netip.MustParsePrefix("10.9.0.0/16"), Table: unix.RT_TABLE_MAIN, Type: unix.RTN_BLACKHOLE}},
		{"10.1.2.3 dev eth0 scope link", Route{Dst: netip.MustParsePrefix("10.1.2.3/32"), Dev: "eth0", Scope: unix.RT_SCOPE_LINK}},
	}
	for _, c := range cases {
		got, err := ParseRoute(strings.Fields(c.in), "vrrp0")
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		c.want.Words = strings.Fields(c.in)
		if c.want.Type == 0 {
			c.want.Type = unix.RTN_UNICAST
		}
		if c.want.Scope == 0 && !strings.Contains(c.in, "scope") {
			c.want.Scope = -1
		}
		if got.String() != c.want.String() || got.Dst != c.want.Dst || got.Src != c.want.Src || got.Via != c.want.Via ||
			got.Dev != c.want.Dev || got.Table != c.want.Table || got.Metric != c.want.Metric || got.Type != c.want.Type ||
			got.Scope != c.want.Scope {
			t.Errorf("%s:\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "via 10.0.0.1", "10.0.0.0/8 metric x", "10.0.0.0/8 table", "10.0.0.0/8 bogus 1"} {
		if _, err := ParseRoute(strings.Fields(bad), "eth0"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseRule(t *testing.T) {
	r, err := ParseRule(strings.Fields("from 10.0.0.100/32 table 100 priority 50"))
	if err != nil || r.From != netip.MustParsePrefix("10.0.0.100/32") || r.Table != 100 || r.Priority != 50 {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseRule(strings.Fields("to 2001:db8::/32 lookup 7 fwmark 0x10"))
	if err != nil || r.Family != 10 || r.Table != 7 || r.Mark != 16 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := ParseRule(strings.Fields("from")); err == nil {
		t.Fatal("rule without value accepted")
	}
}
