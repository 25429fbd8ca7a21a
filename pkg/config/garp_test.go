package config

import (
	"strings"
	"testing"
	"time"
)

// garpRow is what keepalived 2.2.7 prints for an instance in its config
// dump (`keepalived -n -l -D -d`): "Gratuitous ARP delay / repeat / refresh /
// refresh repeat / lower priority delay / lower priority repeat".
type garpRow struct {
	delay, repeat, refresh, refreshRepeat, lowerDelay, lowerRepeat int
}

func rowOf(g GARP) garpRow {
	s := func(d Duration) int { return int(d.D() / time.Second) }
	return garpRow{s(g.MasterDelay), g.MasterRepeat, s(g.MasterRefresh), g.MasterRefreshRepeat, s(g.LowerPrioDelay), g.LowerPrioRepeat}
}

// Each case's expectations were read from keepalived 2.2.7's own config dump
// of the same text (run in a namespace with a veth called eth0), not from
// halo: a value given as 0 stays 0, master and refresh repeats of 0 become 1
// with a message, the lower-priority burst follows the global master values,
// strict mode turns it off, and vrrp_min_garp only changes values still at
// their default (including keepalived's refresh-repeat quirk).
func TestGARPSettingsAsKeepalived(t *testing.T) {
	const inst = `
vrrp_instance V {
  interface eth0
  virtual_router_id 5
%s
  virtual_ipaddress { 10.1.1.1 }
}
`
	cases := []struct {
		name           string
		global, in     string
		wantGlobal     garpRow
		wantInstance   garpRow
		warn           []string
		instanceStrict bool
	}{
		{
			name:         "defaults",
			wantGlobal:   garpRow{5, 5, 0, 1, 5, 5},
			wantInstance: garpRow{5, 5, 0, 1, 5, 5},
		},
		{
			name:         "zero delays stay zero",
			global:       "vrrp_garp_master_delay 0",
			in:           "garp_master_delay 3\ngarp_master_repeat 0",
			wantGlobal:   garpRow{0, 5, 0, 1, 0, 5},
			wantInstance: garpRow{3, 1, 0, 1, 0, 5},
			warn:         []string{"(V): garp_master_repeat must be greater than 0, setting to 1"},
		},
		{
			name:         "instance garp_master_delay 0",
			in:           "garp_master_delay 0",
			wantGlobal:   garpRow{5, 5, 0, 1, 5, 5},
			wantInstance: garpRow{0, 5, 0, 1, 5, 5},
		},
		{
			name:         "repeat 0 for lower priority is kept",
			global:       "vrrp_garp_lower_prio_repeat 0\nvrrp_garp_lower_prio_delay 0",
			in:           "garp_master_refresh_repeat 0",
			wantGlobal:   garpRow{5, 5, 0, 1, 0, 0},
			wantInstance: garpRow{5, 5, 0, 1, 0, 0},
			warn:         []string{"(V): garp_master_refresh_repeat must be greater than 0, setting to 1"},
		},
		{
			name:         "global repeat 0",
			global:       "vrrp_garp_master_repeat 0\nvrrp_garp_master_refresh_repeat 0",
			wantGlobal:   garpRow{5, 1, 0, 1, 5, 1},
			wantInstance: garpRow{5, 1, 0, 1, 5, 1},
			warn: []string{"vrrp_garp_master_repeat must be greater than 0, setting to 1",
				"vrrp_garp_master_refresh_repeat must be greater than 0, setting to 1"},
		},
		{
			name:         "min_garp with refresh and a lower delay",
			global:       "vrrp_garp_master_refresh 60\nvrrp_min_garp\nvrrp_garp_lower_prio_repeat 0",
			in:           "garp_master_delay 0",
			wantGlobal:   garpRow{0, 1, 60, 0, 0, 0},
			wantInstance: garpRow{0, 1, 60, 0, 0, 0},
		},
		{
			name:         "min_garp overrides a value equal to the default, strict drops the lower burst",
			global:       "vrrp_garp_master_delay 5\nvrrp_garp_master_refresh 10\nvrrp_min_garp\nvrrp_garp_lower_prio_delay 2",
			in:           "strict_mode\ngarp_lower_prio_repeat 4",
			wantGlobal:   garpRow{0, 1, 10, 0, 2, 1},
			wantInstance: garpRow{0, 1, 10, 0, 0, 0},
			warn:         []string{"(V) Strict mode requires no repeat garps - resetting"},
		},
		{
			name:         "min_garp keeps values that differ from the default",
			global:       "vrrp_garp_master_delay 3\nvrrp_garp_master_repeat 2\nvrrp_min_garp",
			wantGlobal:   garpRow{3, 2, 0, 0, 3, 2},
			wantInstance: garpRow{3, 2, 0, 0, 3, 2},
		},
		{
			name:         "min_garp off changes nothing",
			global:       "vrrp_min_garp off",
			wantGlobal:   garpRow{5, 5, 0, 1, 5, 5},
			wantInstance: garpRow{5, 5, 0, 1, 5, 5},
		},
		{
			name:         "a later setting wins over min_garp",
			global:       "vrrp_min_garp\nvrrp_garp_master_delay 4",
			wantGlobal:   garpRow{4, 1, 0, 0, 4, 1},
			wantInstance: garpRow{4, 1, 0, 0, 4, 1},
		},
		{
			name:         "fractions are invalid and ignored",
			global:       "vrrp_garp_master_delay 0.5",
			in:           "garp_lower_prio_delay 1.5",
			wantGlobal:   garpRow{5, 5, 0, 1, 5, 5},
			wantInstance: garpRow{5, 5, 0, 1, 5, 5},
			warn: []string{"vrrp_garp_master_delay '0.5' invalid - ignoring",
				"(V): garp_lower_prio_delay '1.5' invalid - ignoring"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := "global_defs {\n" + c.global + "\n}\n" + strings.Replace(inst, "%s", c.in, 1)
			cfg, d := load(t, text)
			if err := d.Err(false); err != nil {
				t.Fatalf("errors: %v", err)
			}
			if got := rowOf(cfg.Global.GARP); got != c.wantGlobal {
				t.Errorf("global: got %+v, want %+v", got, c.wantGlobal)
			}
			if got := rowOf(cfg.Instances[0].GARP); got != c.wantInstance {
				t.Errorf("instance: got %+v, want %+v", got, c.wantInstance)
			}
			all := diagText(d)
			for _, w := range c.warn {
				if !strings.Contains(all, "warning: "+w) {
					t.Errorf("missing warning %q in:\n%s", w, all)
				}
			}
			if len(c.warn) == 0 && d.ExitCode(false) != 0 {
				t.Errorf("unexpected diagnostics:\n%s", all)
			}
		})
	}
}

// The given-record, not the value, decides whether a default applies: every
// keyword that has a non-zero default keeps an explicit 0 where keepalived
// accepts 0 (quorum and smtp_connect_timeout it does not: see
// TestKeepalivedAdjustments).
func TestExplicitZeroIsKept(t *testing.T) {
	cfg, d := load(t, `
global_defs {
  vrrp_garp_master_delay 0
  vrrp_garp_lower_prio_repeat 0
}
vrrp_script S {
  script "/bin/true"
  weight 0
}
vrrp_instance V {
  interface eth0
  virtual_router_id 5
  garp_lower_prio_delay 0
  virtual_ipaddress { 10.1.1.1 }
}
virtual_server 10.1.1.1 80 {
  protocol TCP
  lb_algo rr
  lb_kind DR
  real_server 10.2.2.2 80 { weight 0 }
  real_server 10.2.2.3 80 { }
}
`)
	if err := d.Err(false); err != nil {
		t.Fatal(err)
	}
	g := cfg.Global
	if g.GARP.MasterDelay != 0 || g.GARP.LowerPrioRepeat != 0 {
		t.Errorf("global zeros replaced: %+v", g.GARP)
	}
	in := cfg.Instances[0].GARP
	if in.MasterDelay != 0 || in.LowerPrioDelay != 0 || in.LowerPrioRepeat != 0 {
		t.Errorf("instance zeros replaced: %+v", in)
	}
	vs := cfg.VirtualServers[0]
	if vs.Reals[0].Weight != 0 || vs.Reals[1].Weight != 1 {
		t.Errorf("weights %d %d", vs.Reals[0].Weight, vs.Reals[1].Weight)
	}
}
