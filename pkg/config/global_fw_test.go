package config

import (
	"strings"
	"testing"
)

const fwInstance = `
vrrp_instance V {
  interface eth0
  virtual_router_id 5
  priority 100
%s
  virtual_ipaddress { 10.1.1.1 }
}
`

// keepalived's nftables keywords are parsed with its defaults (table
// unset, priority -1) and its messages for bad values.
func TestFirewallKeywords(t *testing.T) {
	cfg, d := load(t, "global_defs {\n}\n"+strings.Replace(fwInstance, "%s", "", 1))
	if fw := cfg.Global.Firewall; fw.Table != "" || fw.Priority != -1 || fw.Counters || fw.IfIndex {
		t.Fatalf("defaults %+v\n%s", fw, diagText(d))
	}
	cfg, d = load(t, `global_defs {
  nftables halo_fw
  nftables_priority -150
  nftables_counters
  nftables_ifindex
}`+strings.Replace(fwInstance, "%s", "", 1))
	if fw := cfg.Global.Firewall; fw.Table != "halo_fw" || fw.Priority != -150 || !fw.Counters || !fw.IfIndex {
		t.Fatalf("parsed %+v\n%s", fw, diagText(d))
	}
	if strings.Contains(diagText(d), "not used") {
		t.Fatalf("nftables keywords reported as unused:\n%s", diagText(d))
	}
	cfg, d = load(t, "global_defs {\n  nftables\n  nftables_priority 0\n}\n"+strings.Replace(fwInstance, "%s", "", 1))
	if fw := cfg.Global.Firewall; fw.Table != "keepalived" || fw.Priority != 0 {
		t.Fatalf("bare nftables / priority 0: %+v\n%s", fw, diagText(d))
	}
	cfg, d = load(t, "global_defs {\n  nftables a\n  nftables b\n  nftables_priority x\n  nftables_priority 4294967296\n  nftables "+
		strings.Repeat("n", 300)+"\n}\n"+strings.Replace(fwInstance, "%s", "", 1))
	txt := diagText(d)
	for _, want := range []string{"nftables already specified - ignoring", "invalid nftables chain priority 'x'",
		"invalid nftables chain priority '4294967296'"} {
		if !strings.Contains(txt, want) {
			t.Errorf("missing %q in:\n%s", want, txt)
		}
	}
	if fw := cfg.Global.Firewall; fw.Table != "a" || fw.Priority != -1 {
		t.Errorf("bad values changed the settings: %+v", fw)
	}
	cfg, d = load(t, "global_defs {\n  nftables "+strings.Repeat("n", 300)+"\n}\n"+strings.Replace(fwInstance, "%s", "", 1))
	if !strings.Contains(diagText(d), "nftables table name too long - ignoring") || cfg.Global.Firewall.Table != "" {
		t.Errorf("long name: %+v\n%s", cfg.Global.Firewall, diagText(d))
	}
	cfg, d = load(t, "global_defs {\n  vrrp_iptables\n}\n"+strings.Replace(fwInstance, "%s", "", 1))
	if cfg.Global.Firewall.Table != "keepalived" || !strings.Contains(diagText(d), "nftables, not iptables") {
		t.Errorf("vrrp_iptables: %+v\n%s", cfg.Global.Firewall, diagText(d))
	}
}

// Accept mode as keepalived resolves it: default accept; strict mode
// defaults to no_accept unless priority 255; an explicit `accept` in strict
// mode holds for VRRPv3 but is reset for VRRPv2 (RFC 3768), with
// keepalived's warning.
func TestAcceptModeUnderStrict(t *testing.T) {
	cases := []struct {
		name, global, in string
		want             bool
		warn             string
	}{
		{"default", "", "", true, ""},
		{"no_accept", "", "  no_accept", false, ""},
		{"strict default", "vrrp_strict", "", false, ""},
		{"strict owner", "vrrp_strict", "  priority 255", true, ""},
		{"strict v3 accept", "vrrp_strict", "  version 3\n  accept", true, ""},
		{"strict v2 accept", "vrrp_strict", "  accept", false, "accept mode for VRRP version 2 does not comply with RFC3768 - resetting"},
		{"instance strict v2 accept", "", "  strict_mode\n  accept", false, "RFC3768"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, d := load(t, "global_defs {\n  "+tc.global+"\n}\n"+strings.Replace(fwInstance, "%s", tc.in, 1))
			if len(cfg.Instances) != 1 {
				t.Fatalf("no instance:\n%s", diagText(d))
			}
			if got := cfg.Instances[0].Accept; got != tc.want {
				t.Errorf("accept %v, want %v\n%s", got, tc.want, diagText(d))
			}
			if tc.warn != "" && !strings.Contains(diagText(d), tc.warn) {
				t.Errorf("missing %q:\n%s", tc.warn, diagText(d))
			}
			if tc.warn == "" && strings.Contains(diagText(d), "RFC3768") {
				t.Errorf("unexpected reset:\n%s", diagText(d))
			}
		})
	}
}
