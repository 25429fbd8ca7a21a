package vrrpd

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpnet"
)

func testInstance(t *testing.T, body string) *instance {
	t.Helper()
	cfg, d := config.Load("/k.conf", config.Options{ConfigID: "x", FS: config.MapFS{"/k.conf": "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n" + body + "\n}\n"}})
	if err := d.Err(false); err != nil {
		t.Fatal(err)
	}
	dm := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	in, err := newInstance(dm, cfg.Instances[0])
	if err != nil {
		t.Fatal(err)
	}
	in.queue = script.NewQueue(dm.runner, dm.log, time.Second)
	t.Cleanup(in.queue.Close)
	return in
}

var (
	peer   = netip.MustParseAddr("10.0.0.2")
	self   = netip.MustParseAddr("10.0.0.1")
	vipA   = netip.MustParseAddr("10.0.0.100")
	vipB   = netip.MustParseAddr("10.0.0.101")
	mgroup = vrrp.Group4
)

func pkt(t *testing.T, a vrrp.Advert, src, dst netip.Addr, ttl int, mode vrrp.ChecksumMode) vrrpnet.Packet {
	t.Helper()
	b, err := a.Marshal(src, dst, mode)
	if err != nil {
		t.Fatal(err)
	}
	return vrrpnet.Packet{Src: src, Dst: dst, TTL: ttl, Payload: b}
}

// Receive checks in keepalived's order, each with its own drop reason.
func TestReceiveValidation(t *testing.T) {
	pass := [8]byte{'s', 'e', 'c', 'r', 'e', 't'}
	v2 := vrrp.Advert{Version: 2, VRID: 51, Priority: 100, Interval: 1, AuthType: vrrp.AuthPass, AuthData: pass, Addrs: []netip.Addr{vipA}}
	v2auth := "virtual_ipaddress {\n 10.0.0.100\n}\nauthentication {\n auth_type PASS\n auth_pass secret\n}"
	v3 := vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: 100, Addrs: []netip.Addr{vipA}}
	v3conf := "version 3\nvirtual_ipaddress {\n 10.0.0.100\n}"
	mod := func(a vrrp.Advert, f func(*vrrp.Advert)) vrrp.Advert { f(&a); return a }
	cases := []struct {
		name string
		conf string
		p    vrrpnet.Packet
		want string
	}{
		{"v2 good", v2auth, pkt(t, v2, peer, mgroup, 255, 0), ""},
		{"ttl not 255", v2auth, pkt(t, v2, peer, mgroup, 64, 0), "bad_ttl"},
		{"wrong version", v2auth, pkt(t, v3, peer, mgroup, 255, 0), "bad_version"},
		{"no auth from peer", v2auth, pkt(t, mod(v2, func(a *vrrp.Advert) { a.AuthType, a.AuthData = 0, [8]byte{} }), peer, mgroup, 255, 0), "auth_type_mismatch"},
		{"wrong password", v2auth, pkt(t, mod(v2, func(a *vrrp.Advert) { a.AuthData[0] = 'x' }), peer, mgroup, 255, 0), "auth_failure"},
		{"interval mismatch", v2auth, pkt(t, mod(v2, func(a *vrrp.Advert) { a.Interval = 2 }), peer, mgroup, 255, 0), "interval_mismatch"},
		{"bad checksum", v2auth, func() vrrpnet.Packet { p := pkt(t, v2, peer, mgroup, 255, 0); p.Payload[7] ^= 0xff; return p }(), "bad_checksum"},
		{"unicast to a multicast instance", v2auth, pkt(t, v2, peer, self, 255, 0), "expected_multicast"},
		{"vip list differs", v2auth, pkt(t, mod(v2, func(a *vrrp.Advert) { a.Addrs = []netip.Addr{vipB} }), peer, mgroup, 255, 0), "vip_mismatch"},
		{"v3 good", v3conf, pkt(t, v3, peer, mgroup, 255, vrrp.PseudoHeader), ""},
		{"v3 without pseudo-header is accepted", v3conf, pkt(t, v3, peer, mgroup, 255, vrrp.NoPseudoHeader), ""},
		{"v3 other interval is only logged", v3conf, pkt(t, mod(v3, func(a *vrrp.Advert) { a.Interval = 50 }), peer, mgroup, 255, 0), ""},
		{"unicast instance: multicast packet", "version 3\nunicast_peer {\n 10.0.0.2\n}\nvirtual_ipaddress {\n 10.0.0.100\n}", pkt(t, v3, peer, mgroup, 255, 0), "expected_unicast"},
		{"unicast instance: any ttl", "version 3\nunicast_peer {\n 10.0.0.2\n}\nvirtual_ipaddress {\n 10.0.0.100\n}", pkt(t, v3, peer, self, 3, 0), ""},
		{"unicast ttl limits", "version 3\nunicast_peer {\n 10.0.0.2 min_ttl 250\n}\nvirtual_ipaddress {\n 10.0.0.100\n}", pkt(t, v3, peer, self, 64, 0), "bad_ttl"},
		{"check_unicast_src", "version 3\ncheck_unicast_src\nunicast_peer {\n 10.0.0.3\n}\nvirtual_ipaddress {\n 10.0.0.100\n}", pkt(t, v3, peer, self, 255, 0), "unknown_unicast_source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := testInstance(t, c.conf)
			a, err := vrrp.Parse(c.p.Payload, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := in.validate(c.p, a); got != c.want {
				t.Fatalf("reason %q, want %q", got, c.want)
			}
		})
	}
}

// The VIP check is skipped for the same master with skip_check_adv_addr.
func TestSkipCheckAdvAddr(t *testing.T) {
	in := testInstance(t, "skip_check_adv_addr\nversion 3\nvirtual_ipaddress {\n 10.0.0.100\n}")
	good := vrrp.Advert{Version: 3, VRID: 51, Priority: 100, Interval: 100, Addrs: []netip.Addr{vipA}}
	other := good
	other.Addrs = []netip.Addr{vipB}
	p := pkt(t, good, peer, mgroup, 255, 0)
	a, _ := vrrp.Parse(p.Payload, false)
	if r := in.validate(p, a); r != "" {
		t.Fatal(r)
	}
	p = pkt(t, other, peer, mgroup, 255, 0)
	a, _ = vrrp.Parse(p.Payload, false)
	if r := in.validate(p, a); r != "" {
		t.Fatalf("same master, different VIPs: %s", r)
	}
	p = pkt(t, other, netip.MustParseAddr("10.0.0.9"), mgroup, 255, 0)
	a, _ = vrrp.Parse(p.Payload, false)
	if r := in.validate(p, a); r != "vip_mismatch" {
		t.Fatalf("new master, different VIPs: %q", r)
	}
}
