package config

import (
	"path/filepath"
	"testing"
	"time"
)

// The example configs in configs/ are valid and say what their comments
// claim.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.conf")
	if err != nil || len(files) < 5 {
		t.Fatalf("configs: %v %v", files, err)
	}
	loaded := map[string]*Config{}
	for _, f := range files {
		cfg, d := Load(f, Options{ConfigID: "x", Scripts: NewScriptChecker()})
		if code := d.ExitCode(false); code != 0 {
			t.Errorf("%s: exit %d\n%s", f, code, diagText(d))
			continue
		}
		loaded[filepath.Base(f)] = cfg
	}

	// Every config asserted on below must have loaded: a missing or broken
	// file is a failure, never a reason to skip its assertions.
	for _, name := range []string{"dual-master-ysz202.conf", "dual-master-ysz204.conf", "lvs-dr.conf", "lvs-tun.conf", "lvs-nat.conf"} {
		if loaded[name] == nil {
			t.Fatalf("%s did not load (its assertions would be skipped)", name)
		}
	}
	for _, name := range []string{"dual-master-ysz202.conf", "dual-master-ysz204.conf"} {
		c := loaded[name]
		if c == nil {
			continue
		}
		if len(c.Instances) != 2 || c.Scripts[0].Weight != -5 || c.Global.VRRPMcastGroup4.String() != "224.0.100.18" {
			t.Errorf("%s: instances %d", name, len(c.Instances))
		}
		for _, in := range c.Instances {
			if in.NotifyMaster == in.NotifyBackup || in.NotifyMaster == nil || len(in.TrackScripts) != 1 || in.AuthType != "PASS" {
				t.Errorf("%s %s: notify/track/auth missing", name, in.Name)
			}
		}
	}
	// The two nodes mirror each other: each instance is MASTER on one node.
	a, b := loaded["dual-master-ysz202.conf"], loaded["dual-master-ysz204.conf"]
	if a != nil && b != nil {
		for i := range a.Instances {
			if a.Instances[i].State == b.Instances[i].State || a.Instances[i].Priority == b.Instances[i].Priority {
				t.Errorf("instance %s is not mirrored", a.Instances[i].Name)
			}
		}
	}

	if dr := loaded["lvs-dr.conf"]; dr != nil {
		vs := dr.VirtualServers[0]
		if vs.Method != "DR" || vs.Scheduler != "mh" || dr.Dataplane.Backend != "xdp" || len(vs.Reals) != 2 ||
			vs.Reals[0].Weight != 2 || !vs.Reals[1].Inhibit || vs.Reals[0].Checkers[0].Retry != 2 {
			t.Errorf("lvs-dr: %+v", vs)
		}
	}
	if tun := loaded["lvs-tun.conf"]; tun != nil {
		web, dns := tun.VirtualServers[0], tun.VirtualServers[1]
		if web.Method != "TUN" || web.Tunnel != (Tunnel{TunType: "ipip"}) || web.PersistenceTimeout.D() != 600*time.Second ||
			web.PersistenceGranularity != "255.255.255.0" || web.Protocol != "TCP" {
			t.Errorf("lvs-tun web: %+v", web)
		}
		if dns.Tunnel != (Tunnel{TunType: "gue", TunPort: 6080}) || !dns.OPS || dns.Protocol != "UDP" ||
			dns.Reals[1].Tunnel != (Tunnel{"gre", 0, "csum"}) || dns.Reals[0].Method != "" {
			t.Errorf("lvs-tun dns: %+v reals %+v %+v", dns, dns.Reals[0], dns.Reals[1])
		}
		dp := tun.Dataplane
		if dp.FlowTableSize != 1<<20 || dp.UDPTimeout.D() != time.Minute || dp.TCPTimeout.D() != 900*time.Second ||
			dp.MaxServices != 64 || dp.MaxReals != 256 {
			t.Errorf("lvs-tun dataplane: %+v", dp)
		}
	} else {
		t.Error("lvs-tun.conf not loaded")
	}
	if nat := loaded["lvs-nat.conf"]; nat != nil {
		vs := nat.VirtualServers[0]
		if vs.Method != "NAT" || vs.Quorum != 2 || vs.SorryServer == nil || vs.PersistenceTimeout.D() != 300*time.Second ||
			len(vs.Reals[0].Checkers[0].URLs) != 2 || vs.Reals[0].Port != 8443 || nat.Global.LVSNotifyFIFO == nil ||
			len(nat.Dataplane.Interfaces) != 2 {
			t.Errorf("lvs-nat: %+v", vs)
		}
		codes := vs.Reals[0].Checkers[0].URLs[1].StatusCodes
		if len(codes) != 2 || codes[1] != (StatusRange{503, 503}) {
			t.Errorf("status codes %v", codes)
		}
	}
}
