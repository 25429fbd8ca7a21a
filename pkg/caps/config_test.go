package caps

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/halo-lb/halo/pkg/config"
)

func load(t *testing.T, text string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "halo.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, d := config.Load(p, config.Options{})
	if cfg == nil || d.Err(false) != nil {
		t.Fatalf("config: %v", d.Err(false))
	}
	return cfg
}

const instance = `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 1
  priority 100
  virtual_ipaddress {
    10.0.0.100/24
  }
%s}
`

// Which scripts a parsed configuration holds, and whom they run as,
// decide the set (keepalived's rule: script_user, else keepalived_script
// when it exists, else root).
func TestNeedsOfConfig(t *testing.T) {
	none := func(string) bool { return false }
	has := func(string) bool { return true }
	for _, c := range []struct {
		name   string
		text   string
		exists func(string) bool
		want   Needs
	}{
		{"no scripts", "global_defs {\n}\n" + instance, none, Needs{}},
		{"notify without script_user, no keepalived_script user", "global_defs {\n}\n" +
			sprintf(instance, "  notify_master /bin/true\n"), none, Needs{Scripts: true, RootScripts: true}},
		{"notify, keepalived_script exists", "global_defs {\n}\n" +
			sprintf(instance, "  notify_master /bin/true\n"), has, Needs{Scripts: true, ScriptUsers: true}},
		{"script_user nobody", "global_defs {\n  script_user nobody\n}\n" +
			sprintf(instance, "  notify_backup /bin/true\n"), none, Needs{Scripts: true, ScriptUsers: true}},
		{"script_user root", "global_defs {\n  script_user root\n}\n" +
			sprintf(instance, "  notify /bin/true\n"), has, Needs{Scripts: true, RootScripts: true}},
		{"MISC_CHECK found by the walk", "global_defs {\n  script_user nobody\n}\n" + `virtual_server 10.0.0.100 80 {
  lb_kind DR
  protocol TCP
  real_server 10.0.0.2 80 {
    MISC_CHECK {
      misc_path "/bin/true"
    }
  }
}
`, none, Needs{Scripts: true, ScriptUsers: true}},
		{"notify_fifo owned by another user", "global_defs {\n  notify_fifo /run/k.fifo nobody\n}\n" + instance,
			none, Needs{FIFOOwners: true}},
		{"a checker binding port 999", "global_defs {\n}\n" + `virtual_server 10.0.0.100 80 {
  lb_kind DR
  protocol TCP
  real_server 10.0.0.2 80 {
    TCP_CHECK {
      bind_port 999
    }
  }
}
`, none, Needs{LowPorts: true}},
		{"notify_fifo owned by root's default", "global_defs {\n  notify_fifo /run/k.fifo\n}\n" + instance,
			none, Needs{}},
	} {
		got := needsOf(load(t, c.text), c.exists)
		got.KernelHasCapBPF = false
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func sprintf(format, arg string) string { return fmt.Sprintf(format, arg) }
