package vip

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/config"
)

func TestPreferredLftFromConfig(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *uint32
		bad  bool
	}{
		{"", nil, false}, {"forever", nil, false}, {"0", new(uint32), false}, {"soon", nil, true},
	} {
		a, err := FromConfig(&config.VIP{Prefix: netip.MustParsePrefix("fd00::100/64"), PreferredLft: c.in}, "eth0")
		if (err != nil) != c.bad {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if (a.Preferred == nil) != (c.want == nil) || (a.Preferred != nil && *a.Preferred != *c.want) {
			t.Errorf("%q: preferred %v, want %v", c.in, a.Preferred, c.want)
		}
	}
}

// In the kernel: `preferred_lft 0` installs a deprecated IPv6 VIP, which
// the kernel does not choose as a source address; without it the VIP is
// preferred forever (keepalived's default) and, added last in the same
// /64, becomes the source towards that network.
func TestPreferredLftZeroKeepsVIPOutOfSourceSelection(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "eth0", b, "eth0")
	a.Addr("eth0", "fd00:91::1/64")
	b.Addr("eth0", "fd00:91::2/64")
	src := func() string {
		out := a.IP("-6", "route", "get", "fd00:91::2")
		f := strings.Fields(out)
		for i := range f {
			if f[i] == "src" && i+1 < len(f) {
				return f[i+1]
			}
		}
		return out
	}
	for _, c := range []struct {
		lft, vip, wantSrc string
	}{
		{"0", "fd00:91::100/64", "fd00:91::1"},
		{"", "fd00:91::101/64", "fd00:91::101"},
	} {
		v, err := FromConfig(&config.VIP{Prefix: netip.MustParsePrefix(c.vip), PreferredLft: c.lft}, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Do(func() error { return Add(v) }); err != nil {
			t.Fatal(err)
		}
		addr := a.IP("-6", "addr", "show", "dev", "eth0")
		if c.lft == "0" && !strings.Contains(addr, "deprecated") {
			t.Errorf("preferred_lft 0: the VIP is not deprecated:\n%s", addr)
		}
		if got := src(); got != c.wantSrc {
			t.Errorf("preferred_lft %q: source towards the network %s, want %s\n%s", c.lft, got, c.wantSrc, addr)
		}
	}
}
