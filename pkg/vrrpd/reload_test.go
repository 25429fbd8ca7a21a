package vrrpd

import (
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/config"
)

func load(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, d := config.Load("/k.conf", config.Options{ConfigID: "x", FS: config.MapFS{"/k.conf": text}})
	if err := d.Err(false); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func inst(name, body string) string {
	return "vrrp_instance " + name + " {\n interface eth0\n" + body + "\n}\n"
}

const base = " virtual_router_id 51\n priority 100\n virtual_ipaddress {\n  10.0.0.100/24\n }"

// Reload decides per instance by name what keepalived would do.
func TestReloadDiff(t *testing.T) {
	old := load(t, "# a comment moves every position\n"+inst("KEEP", base)+inst("PRIO", strings.Replace(base, "51", "52", 1))+
		inst("VIPS", strings.Replace(base, "51", "53", 1))+inst("IFACE", strings.Replace(base, "51", "54", 1))+
		inst("VRID", strings.Replace(base, "51", "55", 1))+inst("GONE", strings.Replace(base, "51", "56", 1)))
	newer := load(t, inst("KEEP", base)+
		inst("PRIO", strings.Replace(strings.Replace(base, "51", "52", 1), "priority 100", "priority 120", 1))+
		inst("VIPS", strings.Replace(strings.Replace(base, "51", "53", 1), "10.0.0.100/24", "10.0.0.100/24\n  10.0.0.101/24", 1))+
		strings.Replace(inst("IFACE", strings.Replace(base, "51", "54", 1)), "eth0", "eth1", 1)+
		inst("VRID", strings.Replace(base, "51", "65", 1))+
		inst("NEW", strings.Replace(base, "51", "57", 1)))
	got := Diff(old, newer)
	want := map[string]Change{"KEEP": Unchanged, "PRIO": InPlace, "VIPS": InPlace, "IFACE": Restart, "VRID": Restart,
		"GONE": Removed, "NEW": Added}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %v, want %v", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("diff %v", got)
	}
	// A tracked script's weight is part of the instance it changes.
	s1 := "vrrp_script chk {\n script /bin/true\n weight -10\n}\n" + inst("T", base+"\n track_script {\n  chk\n }")
	s2 := strings.Replace(s1, "weight -10", "weight -20", 1)
	if c := Diff(load(t, s1), load(t, s2))["T"]; c != InPlace {
		t.Errorf("script weight change: %v", c)
	}
	if c := Diff(load(t, s1), load(t, s1))["T"]; c != Unchanged {
		t.Errorf("same config: %v", c)
	}
}
