package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDataplaneDefaults(t *testing.T) {
	cfg, d := load(t, "dataplane {\n backend xdp\n interface eth0\n}\n")
	if d.ExitCode(false) != 0 {
		t.Fatal(diagText(d))
	}
	dp := cfg.Dataplane
	if dp.FlowTableSize != 262144 || dp.TCPTimeout.D() != 900*time.Second || dp.TCPFinTimeout.D() != 120*time.Second ||
		dp.UDPTimeout.D() != 300*time.Second || dp.SYNFloodThreshold != 0 || dp.MaxServices != 1024 || dp.MaxReals != 131072 {
		t.Fatalf("defaults: %+v", dp)
	}
	// The same without the block at all.
	cfg, _ = load(t, "global_defs {\n router_id r\n}\n")
	if cfg.Dataplane.FlowTableSize != 262144 || cfg.Dataplane.MaxReals != 131072 {
		t.Fatalf("defaults without the block: %+v", cfg.Dataplane)
	}
}

func TestDataplaneKeywords(t *testing.T) {
	cfg, d := load(t, `dataplane {
  backend xdp
  interface eth0
  flow_table_size 1048576
  tcp_timeout 7200
  tcp_fin_timeout 60
  udp_timeout 30
  syn_flood_threshold 50000
  max_services 4096
  max_reals 65536
  flow_tracking always
  selection_hash mix32
}
`)
	if d.ExitCode(false) != 0 {
		t.Fatal(diagText(d))
	}
	dp := cfg.Dataplane
	if dp.FlowTableSize != 1<<20 || dp.TCPTimeout.D() != 2*time.Hour || dp.TCPFinTimeout.D() != time.Minute ||
		dp.UDPTimeout.D() != 30*time.Second || dp.SYNFloodThreshold != 50000 || dp.MaxServices != 4096 || dp.MaxReals != 65536 ||
		dp.FlowTracking != "always" || dp.SelectionHash != "mix32" {
		t.Fatalf("%+v", dp)
	}
}

func TestDataplaneValidation(t *testing.T) {
	cases := []struct{ text, want string }{
		{"flow_table_size 100", `4:19: error: flow_table_size: 100 out of range 1024-134217728`},
		{"tcp_timeout 0", `4:15: error: tcp_timeout: 0 out of range 1-2147483`},
		{"udp_timeout 1.5", `4:15: error: udp_timeout: "1.5" is not a number`},
		{"syn_flood_threshold -1", `4:23: error: syn_flood_threshold: -1 out of range`},
		{"max_services 0", `4:16: error: max_services: 0 out of range 1-65536`},
		{"max_reals x", `4:13: error: max_reals: "x" is not a number`},
		{"flow_tracking sometimes", `4:17: error: flow_tracking "sometimes" is not on_change or always`},
		{"xdp_mode fast", `4:12: error: xdp_mode "fast" is not native, generic or auto`},
		{"selection_hash crc32", `4:18: error: selection_hash "crc32" is not murmur3 or mix32`},
	}
	for _, c := range cases {
		_, d := load(t, "dataplane {\n  backend xdp\n  interface eth0\n  "+c.text+"\n}\n")
		if !strings.Contains(diagText(d), "/etc/k.conf:"+c.want) {
			t.Errorf("%s: want %q in\n%s", c.text, c.want, diagText(d))
		}
	}
	// With IPVS the XDP sizes mean nothing: a note says so.
	_, d := load(t, "dataplane {\n backend ipvs\n max_reals 10\n}\n")
	if !strings.Contains(diagText(d), "3:2: note: max_reals is used by the xdp backend only") || d.ExitCode(false) != 0 {
		t.Errorf("ipvs note:\n%s", diagText(d))
	}
}

// The config must fit the tables it asks for: a group counts every address.
func TestDataplaneCapacity(t *testing.T) {
	text := `virtual_server_group G {
  10.0.0.1-10 80
  10.0.1.250-10.0.2.5 80
  fwmark 9
}
virtual_server group G {
  protocol TCP
  lb_algo rr
  lb_kind DR
  real_server 10.1.0.1 80 { }
  real_server 10.1.0.2 80 { }
}
dataplane {
  backend xdp
  interface eth0
  max_services %d
  max_reals %d
}
`
	// 10 + 12 + 1 = 23 services, 46 reals.
	_, d := load(t, strings.Replace(strings.Replace(text, "%d", "23", 1), "%d", "46", 1))
	if d.ExitCode(false) != 0 {
		t.Fatalf("fits exactly, but:\n%s", diagText(d))
	}
	_, d = load(t, strings.Replace(strings.Replace(text, "%d", "22", 1), "%d", "45", 1))
	all := diagText(d)
	if !strings.Contains(all, "13:1: error: the config has 23 services (a group counts each address), more than max_services 22") ||
		!strings.Contains(all, "13:1: error: the config has 46 real servers over all services, more than max_reals 45") {
		t.Fatalf("diagnostics:\n%s", all)
	}
}

// keepalived's LVS keywords that the XDP NAT/TUN and IPVS backends read, as
// the man page gives them; the messages for bad tunnel options are
// keepalived 2.2.7's (observed with keepalived -t).
func TestLVSKeywords(t *testing.T) {
	cfg, d := load(t, `virtual_server 10.1.1.1 80 {
  protocol UDP
  lb_algo sh sh-port sh-fallback
  ops
  lvs_method TUN type gue port 6080 csum
  persistence_timeout 60
  persistence_granularity 255.255.255.0
  sorry_server 10.9.9.9 80
  sorry_server_lvs_method TUN type gre csum
  real_server 10.2.2.2 80 { lvs_method TUN type gre nocsum
  }
  real_server 10.2.2.3 80 { lvs_method DR
  }
  real_server 10.2.2.4 8080 { lvs_method NAT
  }
  real_server 10.2.2.5 80 { lvs_method TUN
  }
}
virtual_server fwmark 7 {
  lb_algo mh mh-port mh-fallback flag-1 flag-2 flag-3
  lb_kind DR
  real_server 10.2.2.6 0 { }
}
`)
	if d.Err(false) != nil {
		t.Fatal(diagText(d))
	}
	vs := cfg.VirtualServers[0]
	if vs.Scheduler != "sh" || strings.Join(vs.SchedFlags, ",") != "sh-port,sh-fallback" || !vs.OPS || vs.Method != "TUN" ||
		vs.Tunnel != (Tunnel{"gue", 6080, "csum"}) || vs.PersistenceTimeout.D() != time.Minute || vs.PersistenceGranularity != "255.255.255.0" {
		t.Errorf("vs: %+v", vs)
	}
	if ss := vs.SorryServer; ss.Method != "TUN" || ss.Tunnel != (Tunnel{"gre", 0, "csum"}) {
		t.Errorf("sorry: %+v", ss)
	}
	r := vs.Reals
	if r[0].Method != "TUN" || r[0].Tunnel != (Tunnel{"gre", 0, "nocsum"}) || r[1].Method != "DR" || r[1].Tunnel != (Tunnel{}) ||
		r[2].Method != "NAT" || r[2].Port != 8080 || r[3].Tunnel != (Tunnel{TunType: "ipip"}) {
		t.Errorf("reals: %+v %+v %+v %+v", r[0], r[1], r[2], r[3])
	}
	fw := cfg.VirtualServers[1]
	if fw.FWMark != 7 || fw.Scheduler != "mh" || len(fw.SchedFlags) != 5 || fw.Method != "DR" {
		t.Errorf("fwmark: %+v", fw)
	}

	bad := []struct{ method, want string }{
		{"lvs_method TUN type gue", "gue tunnels require port, otherwise cannot have port."},
		{"lvs_method TUN type ipip port 5", "gue tunnels require port, otherwise cannot have port."},
		{"lvs_method TUN type gue port 0", "Invalid gue tunnel port 0 for virtual server."},
		{"lvs_method TUN type vxlan", "Unknown tunnel type vxlan for virtual server."},
		{"lvs_method TUN type ipip remcsum", "ipip tunnels do not support checksum option."},
		{"lvs_method TUN type gre remcsum", "gre tunnels do not support remote checksum option."},
	}
	for _, c := range bad {
		_, d := load(t, "virtual_server 10.1.1.1 80 {\n protocol UDP\n lb_algo rr\n "+c.method+"\n real_server 10.2.2.2 80 { }\n}\n")
		if !strings.Contains(diagText(d), "error: "+c.want) {
			t.Errorf("%s: want %q in\n%s", c.method, c.want, diagText(d))
		}
	}
	// keepalived knows lb_kind on a virtual server only.
	_, d = load(t, "virtual_server 10.1.1.1 80 {\n protocol UDP\n lb_algo rr\n lb_kind DR\n real_server 10.2.2.2 80 { lb_kind DR\n }\n}\n")
	if !strings.Contains(diagText(d), `warning: unknown keyword "lb_kind" in real_server 10.2.2.2 80`) {
		t.Errorf("lb_kind in real_server:\n%s", diagText(d))
	}
}

// The XDP data plane matches address, port and protocol: services it could
// never match are refused at load (with their position), not accepted and
// then skipped.
func TestXDPRefusesWhatItCannotMatch(t *testing.T) {
	_, d := load(t, `dataplane {
  backend xdp
  interface eth0
}
virtual_server fwmark 7 {
  lb_kind DR
  real_server 10.2.2.6 0 { }
}
virtual_server 10.1.1.1 0 {
  protocol TCP
  lb_kind DR
  persistence_timeout 60
  real_server 10.2.2.7 0 { }
}
virtual_server 10.1.1.2 80 {
  protocol SCTP
  lb_kind DR
  real_server 10.2.2.8 80 { }
}
virtual_server 10.1.1.3 80 {
  protocol TCP
  lb_kind DR
  real_server 10.2.2.9 80 { }
}
`)
	all := diagText(d)
	for _, want := range []string{
		"5:1: error: virtual_server fwmark 7: firewall-mark services need `backend ipvs`",
		"9:1: error: virtual_server 10.1.1.1 port 0: all-ports services need `backend ipvs`",
		"15:1: error: virtual_server [10.1.1.2]:sctp:80: protocol SCTP needs `backend ipvs`",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	for _, line := range strings.Split(all, "\n") {
		if strings.Contains(line, "error") && strings.Contains(line, "10.1.1.3") {
			t.Errorf("a plain TCP service was refused: %s", line)
		}
	}
}

// halod --dataplane xdp on a config without a dataplane block: the same
// refusals as if the config had named the backend.
func TestBackendOverrideIsValidated(t *testing.T) {
	text := `virtual_server fwmark 7 {
  lb_kind DR
  real_server 10.2.2.6 0 { }
}
`
	if _, d := load(t, text); strings.Contains(diagText(d), "need `backend ipvs`") {
		t.Fatalf("refused without the override:\n%s", diagText(d))
	}
	_, d := load(t, text, Options{ConfigID: "test", Backend: "xdp"})
	if want := "1:1: error: virtual_server fwmark 7: firewall-mark services need `backend ipvs`"; !strings.Contains(diagText(d), want) {
		t.Fatalf("missing %q in:\n%s", want, diagText(d))
	}
}

// TUN encapsulations the XDP program does not build are refused at load,
// on the real that asks for them.
func TestXDPRefusesTunnelsItCannotBuild(t *testing.T) {
	_, d := load(t, `dataplane {
  backend xdp
  interface eth0
}
virtual_server 10.1.1.1 53 {
  protocol UDP
  lvs_method TUN type gue port 6080
  real_server 10.2.2.1 53 { }
  real_server 10.2.2.2 53 {
    lvs_method TUN type gre
  }
  real_server 10.2.2.3 53 {
    lvs_method TUN type gue port 6080 remcsum
  }
  real_server fd00::4 53 { }
}
`)
	all := diagText(d)
	for _, want := range []string{
		"9:3: error: real_server 10.2.2.2: tunnel type gre needs `backend ipvs`",
		"12:3: error: real_server 10.2.2.3: tunnel option remcsum needs `backend ipvs`",
		"15:3: error: real_server fd00::4: TUN between IPv4 and IPv6",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "error: real_server 10.2.2.1:") {
		t.Errorf("a gue nocsum real was refused:\n%s", all)
	}
}

// log_all_failures reaches a checker from global_defs
// (checker_log_all_failures), the virtual server, the real or the checker.
func TestLogAllFailuresInheritance(t *testing.T) {
	const vs = `virtual_server 10.1.1.1 80 {
  protocol TCP
  lb_kind DR
  lb_algo rr
  %s
  real_server 10.2.2.1 80 {
    %s
    TCP_CHECK {
      %s
    }
  }
  real_server 10.2.2.2 80 {
    TCP_CHECK { }
  }
}
`
	for _, c := range []struct {
		name             string
		global, v, r, ck string
		first, second    bool
	}{
		{"none", "", "", "", "", false, false},
		{"global", "global_defs {\n  checker_log_all_failures\n}\n", "", "", "", true, true},
		{"virtual server", "", "log_all_failures", "", "", true, true},
		{"real server", "", "", "log_all_failures", "", true, false},
		{"checker", "", "", "", "log_all_failures", true, false},
	} {
		cfg, d := load(t, c.global+fmt.Sprintf(vs, c.v, c.r, c.ck))
		if err := d.Err(true); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rs := cfg.VirtualServers[0].Reals
		if got1, got2 := rs[0].Checkers[0].LogAllFailures, rs[1].Checkers[0].LogAllFailures; got1 != c.first || got2 != c.second {
			t.Errorf("%s: log_all_failures %v %v, want %v %v", c.name, got1, got2, c.first, c.second)
		}
	}
}
