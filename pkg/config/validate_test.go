package config

import (
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, text string, opts ...Options) (*Config, *Diags) {
	t.Helper()
	o := Options{ConfigID: "test"}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.FS = memFS{"/etc/k.conf": text}
	return Load("/etc/k.conf", o)
}

// The golden fixture verified against keepalived 2.2.7
// (docs/keepalived.md#check-exit-codes).
func TestGoldenFixture(t *testing.T) {
	cfg, d := load(t, `global_defs
{
   router_id "my router"   # trailing comment
   Router_ID upper
}
vrrp_instance VI_1 { state master
    interface eth0
    virtual_router_id 51 ! bang comment
    authentication { auth_type pass
        auth_pass "ab#cd!ef" }
    virtual_ipaddress { 10.99.0.50/24 }
    nopreempt yes
}
virtual_server 10.99.0.50 80 {
    lb_algo RR
    lb_kind nat
    protocol tcp
    real_server 10.99.0.2 80 { weight 1
        TCP_CHECK { connect_timeout 3 } } }
`)
	want := []string{
		`/etc/k.conf:4:4: warning: unknown keyword "Router_ID" in global_defs`,
		`/etc/k.conf:6:28: warning: (VI_1) unknown state 'master', defaulting to BACKUP`,
		`/etc/k.conf:9:32: warning: (VI_1) unknown authentication type 'pass'`,
		// keepalived follows each ignored value with the default it sets.
		`/etc/k.conf:14:1: warning: Virtual server [10.99.0.50]:tcp:80: no scheduler set, setting default 'wlc'`,
		`/etc/k.conf:14:1: warning: Virtual server [10.99.0.50]:tcp:80: no forwarding method set, setting default NAT`,
		`/etc/k.conf:15:13: warning: invalid lvs_scheduler 'RR' - ignoring, using the default 'wlc'`,
		`/etc/k.conf:16:13: warning: unknown [nat] routing method for virtual_server, setting default NAT`,
	}
	if got := strings.TrimSpace(diagText(d)); got != strings.Join(want, "\n") {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if d.ExitCode(false) != 5 {
		t.Fatalf("exit %d, want 5", d.ExitCode(false))
	}
	in := cfg.Instances[0]
	if cfg.Global.RouterID != "my router" || in.State != "BACKUP" || !in.NoPreempt || in.AuthType != "" ||
		len(in.VIPs) != 1 || in.VIPs[0].Prefix.String() != "10.99.0.50/24" {
		t.Fatalf("model: %+v", in)
	}
	vs := cfg.VirtualServers[0]
	if vs.Scheduler != "wlc" || vs.Method != "NAT" || vs.Protocol != "TCP" || len(vs.Reals) != 1 ||
		vs.Reals[0].Checkers[0].ConnectTimeout.D() != 3*time.Second {
		t.Fatalf("virtual server: %+v", vs)
	}
}

// Each validation error is reported with its exact position, and all of
// them in one run.
func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name string
		conf string
		want string
	}{
		{"vrid range", "vrrp_instance V {\n interface eth0\n virtual_router_id 256\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			"/etc/k.conf:3:20: error: virtual_router_id: 256 out of range 1-255"},
		{"vrid missing", "vrrp_instance V {\n interface eth0\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			"/etc/k.conf:1:1: error: (V) virtual_router_id is missing (1-255)"},
		{"priority range", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n priority 0\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			"/etc/k.conf:4:11: error: priority: 0 out of range 1-255"},
		{"priority not a number", "vrrp_instance V {\n priority high\n}\n",
			`/etc/k.conf:2:11: error: priority: "high" is not a number`},
		{"advert_int v3 range", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n version 3\n advert_int 41\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			"/etc/k.conf:1:1: error: (V) VRRPv3 advert_int 41 out of range 0.01-40.95"},
		{"advert_int v2 fraction", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n advert_int 0.5\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			"/etc/k.conf:1:1: warning: (V) VRRPv2 advert_int 0.5 is not a whole number of seconds; rounding to 1"},
		{"mixed families", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1\n  fd00::1\n }\n}\n",
			"/etc/k.conf:6:3: error: (V) fd00::1 is of another address family than the first VIP; put it in virtual_ipaddress_excluded"},
		{"bad VIP", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.300/24\n }\n}\n",
			`/etc/k.conf:5:3: error: virtual address "10.0.0.300/24"`},
		{"unknown VIP option", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1 dve eth0\n }\n}\n",
			`/etc/k.conf:5:12: error: virtual address 10.0.0.1: unknown option "dve"`},
		{"v3 with auth", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n version 3\n authentication {\n  auth_type PASS\n  auth_pass x\n }\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			"/etc/k.conf:1:1: warning: (V) authentication is not supported with VRRP version 3 - ignoring"},
		{"unknown track_script", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n track_script {\n  chk_nope\n }\n}\n",
			"/etc/k.conf:6:3: error: (V) track_script chk_nope: no vrrp_script of that name"},
		{"unknown sync group member", "vrrp_sync_group G {\n group {\n  VI_X\n }\n}\n",
			"/etc/k.conf:1:1: error: sync group G: unknown vrrp_instance VI_X"},
		{"duplicate vrid on an interface", "vrrp_instance A {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress { 10.0.0.1 }\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress { 10.0.0.2 }\n}\n",
			"/etc/k.conf:6:1: error: (B) virtual_router_id 7 is already used by A on eth0 (inet)"},
		{"IPv6 with version 2", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n version 2\n virtual_ipaddress { fd00::1 }\n}\n",
			"/etc/k.conf:1:1: error: (V) VRRP version 2 does not support IPv6; use version 3"},
		{"unknown keyword", "vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n prioritty 5\n}\n",
			`/etc/k.conf:5:2: warning: unknown keyword "prioritty" in vrrp_instance V`},
		{"unknown block skipped whole", "vrrp_instance V {\n interface eth0\n auth_hmac {\n  key x\n }\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			`/etc/k.conf:3:2: warning: unknown block "auth_hmac" in vrrp_instance V, skipped`},
		{"extra brace", "global_defs {\n}\n}\n", "/etc/k.conf:3:1: error: extra '}' found"},
		{"unclosed block", "global_defs {\n router_id x\n", `/etc/k.conf:1:1: error: block "global_defs" is not closed (missing '}')`},
		{"bad boolean", "vrrp_instance V {\n nopreempt maybe\n}\n", `/etc/k.conf:2:12: error: nopreempt: "maybe" is not a boolean (on|off|true|false|yes|no)`},
		{"missing value", "global_defs {\n router_id\n}\n", "/etc/k.conf:2:11: error: router_id: missing value"},
		{"real of other family", "virtual_server 10.0.0.1 80 {\n real_server fd00::2 80 {\n }\n}\n",
			"/etc/k.conf:2:2: error: real_server fd00::2 is of another address family than virtual_server 10.0.0.1 80"},
		{"duplicate real", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n real_server 10.0.0.2 80 {\n }\n}\n",
			"/etc/k.conf:4:2: error: real_server 10.0.0.2:80 is defined twice in virtual_server 10.0.0.1 80"},
		{"unknown vs group", "virtual_server group NOPE {\n}\n", "/etc/k.conf:1:1: error: virtual_server group NOPE: no virtual_server_group of that name"},
		{"bad digest", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n    digest xyz\n   }\n  }\n }\n}\n",
			`/etc/k.conf:6:12: error: digest "xyz" is not 32 hex digits (an MD5 sum)`},
		{"bad status code", "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /\n    status_code 200-99\n   }\n  }\n }\n}\n",
			`/etc/k.conf:6:17: error: status_code "200-99" is not a code or range within 100-599`},
		{"dataplane backend", "dataplane {\n backend ebpf\n}\n", `/etc/k.conf:2:10: error: dataplane backend "ebpf" is not xdp, ipvs or none`},
		{"dataplane xdp needs interface", "dataplane {\n backend xdp\n}\n", "/etc/k.conf:1:1: error: dataplane backend xdp needs at least one interface"},
		{"missing interface (checked)", "vrrp_instance V {\n interface nosuch0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n}\n",
			`/etc/k.conf:1:1: error: non-existent interface "nosuch0" specified in configuration`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, d := load(t, c.conf, Options{ConfigID: "x", InterfaceExists: func(n string) bool { return n == "eth0" }})
			if !strings.Contains(diagText(d), c.want) {
				t.Fatalf("want %q in:\n%s", c.want, diagText(d))
			}
			if d.ExitCode(false) != 5 {
				t.Fatalf("exit %d, want 5", d.ExitCode(false))
			}
		})
	}
}

// All errors of a file come out of one run, in file order.
func TestAllErrorsInOneRun(t *testing.T) {
	_, d := load(t, "vrrp_instance V {\n virtual_router_id 0\n priority 999\n advert_int x\n}\n")
	var errs []string
	for _, x := range d.List {
		if x.Severity >= Error {
			errs = append(errs, x.String())
		}
	}
	all := strings.Join(errs, "\n")
	for _, want := range []string{":2:20: error: virtual_router_id: 0 out of range", ":3:11: error: priority: 999 out of range",
		`:4:13: error: advert_int: "x" is not a time`, "(V) no interface specified"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if err := d.Err(false); err == nil {
		t.Fatal("Err returned nil")
	}
}

func TestStrictTurnsWarningsIntoErrors(t *testing.T) {
	_, d := load(t, "global_defs {\n unknown_thing 1\n}\n")
	if d.Err(false) != nil {
		t.Fatal("a warning stopped a non-strict load")
	}
	if d.Err(true) == nil {
		t.Fatal("strict load accepted a warning")
	}
}

func TestDefaultsAndInheritance(t *testing.T) {
	cfg, d := load(t, `
global_defs {
  vrrp_garp_master_delay 1
  vrrp_garp_master_repeat 3
}
vrrp_instance V {
  state MASTER
  interface eth0
  virtual_router_id 51
  virtual_ipaddress { 10.0.0.1/24 dev eth0 label eth0:1 brd 10.0.0.255 scope global }
}
vrrp_instance W {
  interface eth0
  virtual_router_id 52
  garp_master_repeat 9
  virtual_ipaddress { fd00::5/64 }
}
virtual_server 10.0.0.1 80 {
  delay_loop 10
  retry 4
  persistence_timeout
  real_server 10.0.0.2 80 {
    delay_before_retry 7
    HTTP_GET { url { path / } }
    TCP_CHECK { retry 2 }
  }
  real_server 10.0.0.3 80 {
    MISC_CHECK { misc_path "/bin/true" }
    DNS_CHECK { }
  }
}
`)
	if d.Err(false) != nil {
		t.Fatal(d.Err(false))
	}
	v, w := cfg.Instances[0], cfg.Instances[1]
	if v.Priority != 255 || v.State != "MASTER" || v.Version != 2 || v.AdvertInt.D() != time.Second || !v.Accept {
		t.Errorf("V defaults: prio %d state %s version %d", v.Priority, v.State, v.Version)
	}
	if v.GARP.MasterDelay.D() != time.Second || v.GARP.MasterRepeat != 3 || w.GARP.MasterRepeat != 9 || v.GARP.LowerPrioRepeat != 3 {
		t.Errorf("garp inheritance: %+v / %+v", v.GARP, w.GARP)
	}
	vip := v.VIPs[0]
	if vip.Dev != "eth0" || vip.Label != "eth0:1" || vip.Brd != "10.0.0.255" || vip.Scope != "global" {
		t.Errorf("vip options: %+v", vip)
	}
	if w.Priority != 100 || w.State != "BACKUP" || w.Family != "inet6" || w.Version != 3 {
		t.Errorf("W: prio %d state %s family %s version %d", w.Priority, w.State, w.Family, w.Version)
	}
	vs := cfg.VirtualServers[0]
	if vs.Scheduler != "wlc" || vs.Method != "NAT" || vs.PersistenceTimeout.D() != 360*time.Second || vs.Quorum != 1 {
		t.Errorf("vs defaults: %+v", vs)
	}
	http, tcp := vs.Reals[0].Checkers[0], vs.Reals[0].Checkers[1]
	if http.DelayLoop.D() != 10*time.Second || http.Retry != 4 || http.DelayBeforeRetry.D() != 7*time.Second ||
		http.ConnectTimeout.D() != 5*time.Second || http.URLs[0].StatusCodes[0] != (StatusRange{200, 299}) {
		t.Errorf("http checker: %+v", http)
	}
	if tcp.Retry != 2 || tcp.DelayBeforeRetry.D() != 7*time.Second {
		t.Errorf("tcp checker: %+v", tcp)
	}
	misc, dns := vs.Reals[1].Checkers[0], vs.Reals[1].Checkers[1]
	if misc.Retry != 4 || misc.MiscPath.Argv[0] != "/bin/true" || misc.MiscTimeout.D() != 10*time.Second {
		t.Errorf("misc: %+v", misc)
	}
	if dns.DNSType != "SOA" || dns.DNSName != "." || dns.DelayBeforeRetry.D() != 10*time.Second {
		t.Errorf("dns: %+v", dns)
	}
	if cfg.Dataplane.Backend != "ipvs" || cfg.Dataplane.XDPMode != "auto" {
		t.Errorf("dataplane defaults: %+v", cfg.Dataplane)
	}
}

func TestCheckerDefaultsWithoutOverrides(t *testing.T) {
	cfg, _ := load(t, `virtual_server 10.0.0.1 80 {
  real_server 10.0.0.2 80 {
    HTTP_GET { url { path / } }
    TCP_CHECK { }
    MISC_CHECK { misc_path /bin/true }
    DNS_CHECK { }
  }
}`)
	cs := cfg.VirtualServers[0].Reals[0].Checkers
	want := []struct {
		retry int
		dbr   time.Duration
	}{{1, 3 * time.Second}, {1, time.Second}, {0, time.Second}, {3, 60 * time.Second}}
	for i, w := range want {
		if cs[i].Retry != w.retry || cs[i].DelayBeforeRetry.D() != w.dbr || cs[i].DelayLoop.D() != 60*time.Second {
			t.Errorf("%s: retry %d dbr %v delay_loop %v", cs[i].Type, cs[i].Retry, cs[i].DelayBeforeRetry.D(), cs[i].DelayLoop.D())
		}
	}
}

func TestScriptsAndUDPHex(t *testing.T) {
	cfg, d := load(t, `global_defs { enable_script_security }
vrrp_script chk { script "killall -0 httpd"
  weight -5 reverse
  interval 2 }
vrrp_instance V { interface eth0
  virtual_router_id 1
  virtual_ipaddress { 10.0.0.1 }
  track_script { chk weight 10 }
  notify_master "/etc/keepalived/notify.sh master" nobody nogroup
  notify "/bin/sh -c 'echo $1 >> /tmp/x'"
}
virtual_server 10.0.0.1 53 { protocol udp
  real_server 10.0.0.2 53 { UDP_CHECK { payload Ab12f 3 456
    require_reply 0a X1 } }
}`)
	if d.Err(false) != nil {
		t.Fatal(d.Err(false))
	}
	s := cfg.Scripts[0]
	if s.Weight != -5 || !s.Reverse || s.Interval.D() != 2*time.Second || s.Timeout.D() != 2*time.Second ||
		strings.Join(s.Script.Argv, " ") != "killall -0 httpd" || s.Script.Shell {
		t.Errorf("vrrp_script: %+v %+v", s, s.Script)
	}
	in := cfg.Instances[0]
	if *in.TrackScripts[0].Weight != 10 {
		t.Error("track_script weight override lost")
	}
	nm := in.NotifyMaster
	if strings.Join(nm.Argv, "|") != "/etc/keepalived/notify.sh|master" || nm.User != "nobody" || nm.Group != "nogroup" {
		t.Errorf("notify_master: %+v", nm)
	}
	if n := in.Notify; n.Shell || strings.Join(n.Argv, "|") != "/bin/sh|-c|echo $1 >> /tmp/x" {
		t.Errorf("notify: %+v", n)
	}
	c := cfg.VirtualServers[0].Reals[0].Checkers[0]
	if string(c.Payload) != "\xab\x12\x0f\x03\x45\x06" || !c.RequireReply || c.ReplyPattern != "0aX1" {
		t.Errorf("udp: %x %v %q", c.Payload, c.RequireReply, c.ReplyPattern)
	}
	if cfg.VirtualServers[0].Protocol != "UDP" {
		t.Error("protocol udp not case-insensitive")
	}
}

func TestMissingFileIsFatal(t *testing.T) {
	cfg, d := Load("/nonexistent/halo.conf", Options{ConfigID: "x"})
	if cfg != nil || d.ExitCode(false) != 4 {
		t.Fatalf("cfg %v exit %d", cfg, d.ExitCode(false))
	}
}
