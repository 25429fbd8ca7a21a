package config

import (
	"strings"
	"testing"
	"time"
)

// What keepalived 2.2.7 does with a virtual_server that leaves out protocol,
// scheduler or forwarding method, observed with `keepalived -t -f FILE` on
// the same text (each prints the quoted warning and exits 5): the values come
// from keepalived, not from halo's earlier choices (a missing protocol was
// TCP in halo, silently).
func TestVirtualServerDefaultsAsKeepalived(t *testing.T) {
	cases := []struct {
		name     string
		text     string
		proto    string // of the first virtual server
		sched    string
		method   string
		warnings []string // every warning, in order
	}{
		{
			name:  "everything given",
			text:  "virtual_server 10.1.1.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n real_server 10.2.2.2 80 { weight 1 }\n}\n",
			proto: "TCP", sched: "rr", method: "DR",
		},
		{
			name:  "nothing given",
			text:  "virtual_server 10.1.1.1 80 {\n real_server 10.2.2.2 80 { weight 1 }\n}\n",
			proto: "UDP", sched: "wlc", method: "NAT",
			warnings: []string{
				"Virtual server [10.1.1.1]:none:80: no protocol set - defaulting to UDP",
				"Virtual server [10.1.1.1]:udp:80: no scheduler set, setting default 'wlc'",
				"Virtual server [10.1.1.1]:udp:80: no forwarding method set, setting default NAT",
			},
		},
		{
			name:  "protocol given, no scheduler",
			text:  "virtual_server 10.1.1.1 80 {\n protocol TCP\n lb_kind DR\n real_server 10.2.2.2 80 { }\n}\n",
			proto: "TCP", sched: "wlc", method: "DR",
			warnings: []string{"Virtual server [10.1.1.1]:tcp:80: no scheduler set, setting default 'wlc'"},
		},
		{
			name:  "no forwarding method",
			text:  "virtual_server 10.1.1.1 80 {\n protocol tcp\n lb_algo rr\n real_server 10.2.2.2 80 { TCP_CHECK { } }\n}\n",
			proto: "TCP", sched: "rr", method: "NAT",
			warnings: []string{"Virtual server [10.1.1.1]:tcp:80: no forwarding method set, setting default NAT"},
		},
		{
			name:  "group without protocol",
			text:  "virtual_server group G {\n lb_algo rr\n lb_kind DR\n real_server 10.2.2.2 80 { }\n}\nvirtual_server_group G {\n 10.1.1.1 80\n}\n",
			proto: "UDP", sched: "rr", method: "DR",
			warnings: []string{"Virtual server [G]:0: no protocol set - defaulting to UDP"},
		},
		{
			name:  "fwmark has no protocol; a real's port is cleared",
			text:  "virtual_server fwmark 5 {\n lb_algo rr\n lb_kind DR\n real_server 10.2.2.2 80 { }\n}\n",
			proto: "", sched: "rr", method: "DR",
			warnings: []string{"fwmark virtual server FWM 5, real server [10.2.2.2]:none:80 has port specified - clearing"},
		},
		{
			name: "no real servers: the service is dropped",
			text: "virtual_server 10.1.1.1 80 {\n lb_algo rr\n lb_kind DR\n protocol TCP\n sorry_server 10.3.3.3 80\n}\n" +
				"virtual_server 10.1.1.1 81 {\n protocol SCTP\n lb_algo rr\n lb_kind DR\n real_server 10.2.2.2 81 { }\n}\n",
			proto: "SCTP", sched: "rr", method: "DR",
			warnings: []string{"Virtual server [10.1.1.1]:tcp:80 has no real servers - ignoring"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, d := load(t, c.text)
			var got []string
			for _, x := range d.List {
				if x.Severity >= Warning {
					got = append(got, x.Level+": "+x.Msg)
				}
			}
			var want []string
			for _, w := range c.warnings {
				want = append(want, "warning: "+w)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			wantCode := 0
			if len(want) > 0 {
				wantCode = 5
			}
			if code := d.ExitCode(false); code != wantCode {
				t.Errorf("exit code %d, want %d (as keepalived -t)", code, wantCode)
			}
			vs := cfg.VirtualServers[0]
			if vs.Protocol != c.proto || vs.Scheduler != c.sched || vs.Method != c.method {
				t.Errorf("got protocol %q sched %q method %q, want %q %q %q", vs.Protocol, vs.Scheduler, vs.Method, c.proto, c.sched, c.method)
			}
			if vs.FWMark != 0 && vs.Reals[0].Port != 0 {
				t.Errorf("fwmark real keeps port %d", vs.Reals[0].Port)
			}
			if strings.Contains(c.name, "dropped") && len(cfg.VirtualServers) != 1 {
				t.Errorf("%d virtual servers, want the one with reals", len(cfg.VirtualServers))
			}
		})
	}
}

// vrrp_script values keepalived 2.2.7 refuses (observed with keepalived -t:
// each message below, exit 5) keep their defaults; halo used to accept
// fractions of a second here.
func TestVRRPScriptValuesAsKeepalived(t *testing.T) {
	cfg, d := load(t, `vrrp_script S {
 script /bin/true
 interval 0.5
 timeout 2.5
 rise 0
 fall 2
}
vrrp_script T {
 script /bin/true
 interval 4
}
`)
	want := []string{
		"3:11: warning: (S): vrrp script interval '0.5' must be between 1 and 4294 - ignoring",
		"4:10: warning: (S): vrrp script timeout '2.5' invalid - ignoring",
		"5:7: warning: (S): vrrp script rise value '0' invalid, defaulting to 1",
	}
	for _, w := range want {
		if !strings.Contains(diagText(d), "/etc/k.conf:"+w) {
			t.Errorf("missing %q in\n%s", w, diagText(d))
		}
	}
	if d.ExitCode(false) != 5 || d.Err(false) != nil {
		t.Errorf("exit %d err %v", d.ExitCode(false), d.Err(false))
	}
	s, u := cfg.Scripts[0], cfg.Scripts[1]
	if s.Interval.D() != time.Second || s.Timeout.D() != time.Second || s.Rise != 1 || s.Fall != 2 {
		t.Errorf("S: %+v", s)
	}
	if u.Interval.D() != 4*time.Second || u.Timeout.D() != 4*time.Second {
		t.Errorf("T: interval %v timeout %v (timeout defaults to the interval)", u.Interval.D(), u.Timeout.D())
	}
}

// Values keepalived 2.2.7 adjusts instead of refusing: each row was run
// through `keepalived -t` (in a namespace with the interface) and halod -t;
// the message and the exit code are keepalived's, the resulting value is
// what keepalived then runs with.
func TestKeepalivedAdjustments(t *testing.T) {
	const vi = "vrrp_instance V {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress { 10.1.1.1 }\n"
	const vs = "virtual_server 10.1.1.1 80 {\n protocol TCP\n lb_algo rr\n lb_kind DR\n"
	cases := []struct {
		name, text, diag string // diag "" means none and exit 0
		check            func(c *Config) bool
	}{
		{"nopreempt with priority 255", vi + " state MASTER\n nopreempt\n}\n",
			"warning: (V) nopreempt is incompatible with priority 255. resetting nopreempt",
			func(c *Config) bool { return !c.Instances[0].NoPreempt && c.Instances[0].Priority == 255 }},
		{"real weight up to 2^31-1", vs + " real_server 10.2.2.2 80 { weight 2147483647\n }\n}\n", "",
			func(c *Config) bool { return c.VirtualServers[0].Reals[0].Weight == 2147483647 }},
		{"real weight above", vs + " real_server 10.2.2.2 80 { weight 2147483648\n }\n}\n",
			"weight: 2147483648 out of range 0-2147483647", nil},
		{"quorum 0", vs + " quorum 0\n real_server 10.2.2.2 80 { }\n}\n",
			"warning: Quorum 0 must be in [1, 4294967295]. Setting to 1.",
			func(c *Config) bool { return c.VirtualServers[0].Quorum == 1 }},
		{"quorum above the total weight, hysteresis above quorum", vs + " hysteresis 5\n quorum 2\n real_server 10.2.2.2 80 { }\n}\n",
			"warning: Warning - quorum 2 for [10.1.1.1]:tcp:80 exceeds total weight of real servers 1, reducing quorum to 1",
			func(c *Config) bool { return c.VirtualServers[0].Quorum == 1 && c.VirtualServers[0].Hysteresis == 0 }},
		{"hysteresis message", vs + " hysteresis 5\n quorum 2\n real_server 10.2.2.2 80 { }\n}\n",
			"warning: Virtual server [10.1.1.1]:tcp:80: hysteresis 5 >= quorum 1; setting hysteresis to 0", nil},
		{"quorum within the weights", vs + " quorum 3\n real_server 10.2.2.2 80 { weight 2\n }\n real_server 10.2.2.3 80 { weight 2\n }\n sorry_server 10.9.9.9 80\n}\n", "",
			func(c *Config) bool { return c.VirtualServers[0].Quorum == 3 }},
		{"large GARP interval is legal", "global_defs {\n vrrp_garp_interval 2\n}\n", "",
			func(c *Config) bool { return c.Global.GARP.Interval.D() == 2*time.Second }},
		{"GARP interval 0 is invalid", "global_defs {\n vrrp_garp_interval 0\n}\n", "warning: vrrp_garp_interval '0' is invalid", nil},
		{"GNA interval too large", "global_defs {\n vrrp_gna_interval 5000\n}\n", "warning: vrrp_gna_interval '5000' is invalid", nil},
		{"garp_interval is not an instance keyword", vi + " garp_interval 0.5\n}\n", `warning: unknown keyword "garp_interval" in vrrp_instance V`, nil},
		{"smtp_connect_timeout 0", "global_defs {\n smtp_connect_timeout 0\n}\n",
			"warning: smtp_connect_timeout must be greater than 0, setting to 1",
			func(c *Config) bool { return c.Global.SMTPConnectTimeout.D() == time.Second }},
		{"sync group of one", "vrrp_sync_group G {\n group {\n V\n }\n}\n" + vi + "}\n",
			"warning: Sync group G has only 1 virtual router(s) - this probably isn't what you want",
			func(c *Config) bool { return len(c.SyncGroups) == 1 }},
		{"ops needs UDP", vs + " ops\n real_server 10.2.2.2 80 { }\n}\n",
			"warning: Virtual server [10.1.1.1]:tcp:80: one packet scheduling requires UDP - resetting",
			func(c *Config) bool { return !c.VirtualServers[0].OPS }},
		{"ops with UDP", "virtual_server 10.1.1.1 80 {\n protocol UDP\n lb_algo rr\n lb_kind DR\n ops\n real_server 10.2.2.2 80 { }\n}\n", "",
			func(c *Config) bool { return c.VirtualServers[0].OPS }},
		{"lvs_id is unknown to 2.2.7", "global_defs {\n lvs_id x\n}\n", `warning: unknown keyword "lvs_id" in global_defs`, nil},
		{"bind_port 0", vs + " real_server 10.2.2.2 80 { TCP_CHECK { bind_port 0\n } }\n}\n",
			"warning: Invalid checker bind_port '0'",
			func(c *Config) bool { return c.VirtualServers[0].Reals[0].Checkers[0].BindPort == 0 }},
		{"rule without preference", vi + " virtual_rules {\n from 10.1.1.1 table 100\n }\n}\n",
			"warning: Rule has no preference specified - setting to 16384. This is probably not what you want.",
			func(c *Config) bool { return c.Instances[0].VirtualRules[0].Priority == 16384 }},
		{"rule with preference", vi + " virtual_rules {\n from 10.1.1.1 table 100 preference 100\n }\n}\n", "",
			func(c *Config) bool { return c.Instances[0].VirtualRules[0].Priority == 100 }},
		{"connect_port 0", vs + " real_server 10.2.2.2 80 { TCP_CHECK { connect_port 0\n } }\n}\n",
			"warning: Invalid checker connect_port '0'",
			func(c *Config) bool { return c.VirtualServers[0].Reals[0].Checkers[0].ConnectPort == 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, d := load(t, c.text)
			all := diagText(d)
			switch {
			case c.diag == "" && d.ExitCode(false) != 0:
				t.Fatalf("want exit 0:\n%s", all)
			case c.diag != "" && (!strings.Contains(all, c.diag) || d.ExitCode(false) != 5):
				t.Fatalf("want %q and exit 5, got exit %d:\n%s", c.diag, d.ExitCode(false), all)
			}
			if c.check != nil && !c.check(cfg) {
				t.Errorf("value not as keepalived: %+v %+v", cfg.Global, cfg.VirtualServers)
			}
		})
	}
}

// keepalived checks script security only for scripts that will run: a
// vrrp_script nobody tracks does not make `keepalived -t` exit 6, a tracked
// one does (both observed on 2.2.7 as root, without enable_script_security).
func TestUnusedVRRPScriptIsNotASecurityViolation(t *testing.T) {
	sc := &ScriptChecker{
		LookPath: func(s string) (string, error) { return "/usr/bin/true", nil },
		Stat:     NewScriptChecker().Stat,
	}
	const script = "vrrp_script S {\n script /usr/bin/true\n}\n"
	const inst = "vrrp_instance V {\n interface eth0\n virtual_router_id 5\n virtual_ipaddress { 10.1.1.1 }\n%s}\n"
	_, d := load(t, script, Options{ConfigID: "x", Scripts: sc})
	if d.ExitCode(false) != 0 {
		t.Fatalf("unused script: exit %d\n%s", d.ExitCode(false), diagText(d))
	}
	_, d = load(t, script+strings.Replace(inst, "%s", " track_script {\n S\n }\n", 1), Options{ConfigID: "x", Scripts: sc})
	if d.ExitCode(false) != 6 || !strings.Contains(diagText(d), "SECURITY VIOLATION") {
		t.Fatalf("tracked script: exit %d\n%s", d.ExitCode(false), diagText(d))
	}
}

// keepalived resolves script_user when it reads global_defs and warns when
// the user does not exist (observed: "Error setting global script uid/gid",
// exit 5); `halod -t` (Options.Scripts) does the same.
func TestUnknownScriptUser(t *testing.T) {
	_, d := load(t, "global_defs {\n script_user no-such-user-halo\n}\n", Options{ConfigID: "x", Scripts: NewScriptChecker()})
	if !strings.Contains(diagText(d), "warning: Error setting global script uid/gid (script_user no-such-user-halo)") || d.ExitCode(false) != 5 {
		t.Fatalf("exit %d:\n%s", d.ExitCode(false), diagText(d))
	}
	_, d = load(t, "global_defs {\n script_user root root\n}\n", Options{ConfigID: "x", Scripts: NewScriptChecker()})
	if d.ExitCode(false) != 0 {
		t.Fatalf("root: exit %d:\n%s", d.ExitCode(false), diagText(d))
	}
}
