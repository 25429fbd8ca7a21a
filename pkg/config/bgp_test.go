package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

const bgpExample = `
bgp {
    local_as 65010
    router_id 10.0.0.11
    listen_port -1
    neighbor 10.0.0.1 {
        remote_as 65000
        hold_time 3
        password s3cr3t-md5
        next_hop_self
    }
    neighbor fd00::1 {
        remote_as 4200000000
        local_address fd00::11
        port 1179
        multihop 2
    }
    announce {
        10.96.100.100/32
        2001:db8::/64
        10.96.100.101
    }
}
`

func TestBGPBlock(t *testing.T) {
	cfg, d := load(t, bgpExample)
	if d.ExitCode(false) != 0 {
		t.Fatalf("diagnostics:\n%s", diagText(d))
	}
	g := cfg.BGP
	if g == nil || g.LocalAS != 65010 || g.RouterID != netip.MustParseAddr("10.0.0.11") || g.ListenPort != -1 {
		t.Fatalf("bgp: %+v", g)
	}
	if len(g.Neighbors) != 2 {
		t.Fatalf("neighbors: %d", len(g.Neighbors))
	}
	a, b := g.Neighbors[0], g.Neighbors[1]
	if a.Addr.String() != "10.0.0.1" || a.RemoteAS != 65000 || a.HoldTime != 3 || string(a.Password) != "s3cr3t-md5" ||
		!a.NextHopSelf || a.Port != 179 || a.MultihopTTL != 0 {
		t.Errorf("neighbor a: %+v", a)
	}
	if b.RemoteAS != 4200000000 || b.HoldTime != 90 || b.Port != 1179 || b.MultihopTTL != 2 ||
		b.LocalAddress.String() != "fd00::11" || b.Password != "" {
		t.Errorf("neighbor b: %+v", b)
	}
	want := []string{"10.96.100.100/32", "2001:db8::/64", "10.96.100.101/32"}
	if fmt.Sprint(g.Announce) != fmt.Sprint(want) {
		t.Errorf("announce %v, want %v", g.Announce, want)
	}
	if a.Pos.Line != 6 || a.Pos.Col != 5 {
		t.Errorf("neighbor position %v", a.Pos)
	}
}

// Without a bgp block there is no BGP section at all, and defaults need none.
func TestNoBGPBlock(t *testing.T) {
	cfg, d := load(t, "global_defs {\n router_id r\n}\n")
	if d.ExitCode(false) != 0 || cfg.BGP != nil {
		t.Fatalf("bgp %+v\n%s", cfg.BGP, diagText(d))
	}
	b, _ := json.Marshal(cfg)
	if bytes.Contains(b, []byte(`"bgp"`)) {
		t.Fatalf("bgp in JSON: %s", b)
	}
}

// Secrets never leave the model: not in the JSON of halod -d, not in %v,
// %+v, %#v or %s formatting, not in slog records.
func TestSecretsAreMasked(t *testing.T) {
	cfg, d := load(t, bgpExample+`
vrrp_instance V {
  interface eth0
  virtual_router_id 5
  authentication {
    auth_type PASS
    auth_pass pw123456
  }
  virtual_ipaddress { 10.1.1.1 }
}
`)
	if d.Err(false) != nil {
		t.Fatal(d.Err(false))
	}
	var out bytes.Buffer
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(js)
	nb := cfg.BGP.Neighbors[0]
	in := cfg.Instances[0]
	fmt.Fprintf(&out, "%v %+v %#v %s %v %+v %#v", nb, nb, nb, nb.Password, *in, in, *in)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "password", nb.Password, "neighbor", nb, "auth", in.AuthPass)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "password", nb.Password, "auth", in.AuthPass)
	for _, secret := range []string{"s3cr3t-md5", "pw123456"} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("secret %q leaked:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(string(js), `"password":"********"`) || !strings.Contains(string(js), `"auth_pass":"********"`) {
		t.Fatalf("mask missing from JSON: %s", js)
	}
	if string(nb.Password) != "s3cr3t-md5" || string(in.AuthPass) != "pw123456" {
		t.Fatal("the value itself must stay usable")
	}
}

func TestBGPValidation(t *testing.T) {
	cases := []struct{ text, want string }{
		{"bgp {\n local_as 0\n neighbor 10.0.0.1 { remote_as 1 }\n}", `2:11: error: local_as "0" is not an AS number (1-4294967295)`},
		{"bgp {\n local_as 4294967296\n neighbor 10.0.0.1 { remote_as 1 }\n}", `2:11: error: local_as "4294967296" is not an AS number`},
		{"bgp {\n neighbor 10.0.0.1 { remote_as 1 }\n}", `1:1: error: bgp: local_as is missing`},
		{"bgp {\n local_as 1\n}", `1:1: error: bgp: no neighbor given`},
		{"bgp {\n local_as 1\n router_id fd00::1\n neighbor 10.0.0.1 { remote_as 1 }\n}", `3:12: error: bgp router_id fd00::1 must be a unicast IPv4 address`},
		{"bgp {\n local_as 1\n listen_port 0\n neighbor 10.0.0.1 { remote_as 1 }\n}", `3:14: error: bgp listen_port "0" must be -1`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 {\n  remote_as 1\n  hold_time 2\n }\n}", `5:13: error: hold_time "2" must be 0 or 3-65535 seconds`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 {\n  remote_as 1\n  hold_time 65536\n }\n}", `5:13: error: hold_time "65536" must be 0 or 3-65535`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 {\n  hold_time 0\n }\n}", `3:2: error: bgp neighbor 10.0.0.1 has no remote_as`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 { remote_as 2 }\n neighbor 10.0.0.1 { remote_as 3 }\n}", `4:11: error: bgp neighbor 10.0.0.1 is defined twice (first at /etc/k.conf:3:2)`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.300 { remote_as 2 }\n}", `3:11: error: bgp neighbor: "10.0.0.300" is not an IP address`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 {\n  remote_as 2\n  local_address fd00::1\n }\n}", `3:2: error: bgp neighbor 10.0.0.1: local_address fd00::1 is of another address family`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 { remote_as 2 }\n announce {\n  10.0.0.1/24\n }\n}", `5:3: error: bgp announce: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 { remote_as 2 }\n announce {\n  10.0.0/24\n }\n}", `5:3: error: bgp announce: "10.0.0/24" is not an address or prefix`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 { remote_as 2 }\n}\nbgp {\n local_as 2\n}", `5:1: error: bgp block given twice (the first is at /etc/k.conf:1:1)`},
		{"bgp {\n local_as 1\n neighbor 10.0.0.1 { remote_as 2\n  md5 x }\n}", `4:3: warning: unknown keyword "md5" in bgp neighbor 10.0.0.1`},
	}
	for _, c := range cases {
		_, d := load(t, c.text)
		if !strings.Contains(diagText(d), "/etc/k.conf:"+c.want) {
			t.Errorf("config:\n%s\nwant %q in:\n%s", c.text, c.want, diagText(d))
		}
	}
}
