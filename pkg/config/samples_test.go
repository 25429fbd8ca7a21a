package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const samplesDir = "/usr/share/doc/keepalived/samples"

// Every sample Debian's keepalived package installs parses. Samples that
// keepalived 2.2.7 itself rejects (with every interface present) are rejected
// by halo too, for the same reason (docs/keepalived.md#debian-samples).
func TestKeepalivedSamples(t *testing.T) {
	ents, err := os.ReadDir(samplesDir)
	if err != nil {
		t.Skipf("keepalived samples not installed (%v); .ci/run installs the keepalived package", err)
	}
	rejected := map[string]struct {
		code   int
		reason string
	}{
		"keepalived.conf.SSL_GET":               {5, "initial state master is incompatible with AH authentication"},
		"keepalived.conf.conditional_conf":      {5, "no script set for vrrp_script check_VI_0"},
		"keepalived.conf.fwmark":                {5, "protocol specified for fwmark - protocol will be ignored"},
		"keepalived.conf.track_interface":       {5, "cannot track route 192.168.112.0/24 with no interface specified"},
		"keepalived.conf.vrrp.localcheck":       {6, "SECURITY VIOLATION - scripts are being executed but script_security not enabled"},
		"keepalived.conf.vrrp.lvs_syncd":        {5, `unknown keyword "VI_2"`},
		"keepalived.conf.vrrp.routes":           {5, "cannot track route 192.168.112.0/24 with no interface specified"},
		"keepalived.conf.vrrp.rules":            {5, `invalid rule to address "192.168.100./24"`},
		"keepalived.conf.vrrp.static_ipaddress": {5, "cannot track route 192.168.112.0/24 with no interface specified"},
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "keepalived.conf.") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			cfg, d := Load(filepath.Join(samplesDir, name), Options{ConfigID: "nohost", Scripts: NewScriptChecker()})
			if cfg == nil {
				t.Fatalf("not read: %v", d.List)
			}
			code := d.ExitCode(false)
			want, isRejected := rejected[name]
			if !isRejected {
				if code != 0 {
					t.Fatalf("exit %d, want 0; diagnostics:\n%s", code, diagText(d))
				}
				return
			}
			if code != want.code {
				t.Fatalf("exit %d, want %d; diagnostics:\n%s", code, want.code, diagText(d))
			}
			if !strings.Contains(diagText(d), want.reason) {
				t.Fatalf("reason %q not reported; diagnostics:\n%s", want.reason, diagText(d))
			}
			t.Logf("rejected as keepalived 2.2.7 does: %s", want.reason)
		})
	}
	if n < 20 {
		t.Fatalf("only %d samples found", n)
	}
	// conditional_conf is valid for the config id it was written for.
	cfg, d := Load(filepath.Join(samplesDir, "keepalived.conf.conditional_conf"), Options{ConfigID: "high", Scripts: NewScriptChecker()})
	if code := d.ExitCode(false); code != 0 {
		t.Fatalf("conditional_conf with id high: exit %d\n%s", code, diagText(d))
	}
	if cfg.Instances[0].Priority != 170 || cfg.Scripts[0].Script.Argv[0] != "/etc/keepalived/scripts/check_high_VI_0.sh" {
		t.Fatalf("conditionals not applied: prio %d", cfg.Instances[0].Priority)
	}
}

func diagText(d *Diags) string {
	var b strings.Builder
	for _, x := range d.List {
		b.WriteString(x.String())
		b.WriteByte('\n')
	}
	return b.String()
}
