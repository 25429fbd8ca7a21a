package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func runHalod(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.conf")
	if len(files) == 0 {
		t.Fatal("no example configs")
	}
	for _, f := range files {
		code, _, stderr := runHalod(t, "-t", "--check-interfaces=false", "-f", f)
		if code != 0 || !strings.Contains(stderr, "configuration OK") {
			t.Errorf("%s: exit %d\n%s", f, code, stderr)
		}
	}
}

func TestCheckBrokenConfig(t *testing.T) {
	p := writeConf(t, "vrrp_instance V {\n  interface eth0\n  virtual_router_id 300\n  priority x\n  virtual_ipaddress { 10.0.0.1 }\n}\n")
	code, _, stderr := runHalod(t, "-t", "--check-interfaces=false", "-f", p)
	if code != 5 {
		t.Fatalf("exit %d, want 5\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(p) + `:\d+:\d+: error: `)
	if len(lines) != 2 || !re.MatchString(lines[0]) || !re.MatchString(lines[1]) {
		t.Fatalf("want two FILE:LINE:COL: error: lines, got:\n%s", stderr)
	}
	if !strings.Contains(lines[0], ":3:21: error: virtual_router_id: 300 out of range 1-255") ||
		!strings.Contains(lines[1], `:4:12: error: priority: "x" is not a number`) {
		t.Fatalf("wrong positions:\n%s", stderr)
	}
}

func TestCheckWarningsAndStrict(t *testing.T) {
	p := writeConf(t, "global_defs {\n  router_idd x\n}\n")
	if code, _, stderr := runHalod(t, "-t", "-f", p); code != 5 || !strings.Contains(stderr, ":2:3: warning: unknown keyword") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// A warning does not stop -d; --strict-config makes it fatal for the daemon.
	if code, out, _ := runHalod(t, "-d", "-f", p); code != 0 || !strings.Contains(out, `"router_id"`) {
		t.Fatalf("-d exit %d", code)
	}
	if code, _, _ := runHalod(t, "-d", "--strict-config", "-f", p); code != 5 {
		t.Fatalf("-d --strict-config exit %d, want 5", code)
	}
}

func TestCheckMissingFile(t *testing.T) {
	code, _, stderr := runHalod(t, "-t", "-f", "/nonexistent/keepalived.conf")
	if code != 4 || !strings.Contains(stderr, "cannot read config") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestCheckScriptSecurity(t *testing.T) {
	p := writeConf(t, "vrrp_script chk {\n  script /bin/true\n}\nvrrp_instance V {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress { 10.0.0.1 }\n  track_script { chk }\n}\n")
	code, _, stderr := runHalod(t, "-t", "--check-interfaces=false", "-f", p)
	if code != 6 || !strings.Contains(stderr, "SECURITY VIOLATION") {
		t.Fatalf("exit %d, want 6: %s", code, stderr)
	}
	// A script others can write is refused even with script security on.
	dir := t.TempDir()
	script := filepath.Join(dir, "chk.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o777); err != nil {
		t.Fatal(err)
	}
	// (Tracked by an instance: keepalived 2.2.7 -t checks only scripts in use.)
	p = writeConf(t, "global_defs {\n  enable_script_security\n  script_user root\n}\nvrrp_script chk {\n  script "+script+"\n}\n"+
		"vrrp_instance V {\n  interface eth0\n  virtual_router_id 1\n  virtual_ipaddress { 10.0.0.1 }\n  track_script { chk }\n}\n")
	code, _, stderr = runHalod(t, "-t", "--check-interfaces=false", "-f", p)
	if os.Geteuid() == 0 && (code != 6 || !strings.Contains(stderr, "writable by non-root")) {
		t.Fatalf("exit %d, want 6: %s", code, stderr)
	}
}

func TestDumpJSON(t *testing.T) {
	code, out, stderr := runHalod(t, "-d", "--check-interfaces=false", "-f", "../../configs/lvs-dr.conf")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var m struct {
		Instances []struct {
			Name     string `json:"name"`
			Priority int    `json:"priority"`
		} `json:"vrrp_instances"`
		VS []struct {
			Method string `json:"lvs_method"`
			Reals  []struct {
				Checkers []struct {
					DelayLoop float64 `json:"delay_loop"`
					Retry     int     `json:"retry"`
				} `json:"checkers"`
			} `json:"real_servers"`
		} `json:"virtual_servers"`
		Dataplane struct {
			Backend string `json:"backend"`
		} `json:"dataplane"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(m.Instances) != 1 || m.Instances[0].Priority != 150 || m.VS[0].Method != "DR" ||
		m.VS[0].Reals[1].Checkers[0].DelayLoop != 5 || m.VS[0].Reals[1].Checkers[0].Retry != 1 || m.Dataplane.Backend != "xdp" {
		t.Fatalf("dump: %+v", m)
	}
}

func TestBadFlags(t *testing.T) {
	if code, _, _ := runHalod(t, "--dataplane", "dpdk"); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if code, _, _ := runHalod(t, "--no-such-flag"); code != 2 {
		t.Fatalf("exit %d", code)
	}
}

func TestNotifyTimeoutFlag(t *testing.T) {
	o, _, err := parseFlags(nil, io.Discard)
	if err != nil || o.notifyTimeout != 30*time.Second {
		t.Fatalf("default --notify-timeout %v (%v), want 30s", o.notifyTimeout, err)
	}
	if o, _, err = parseFlags([]string{"--notify-timeout", "5s"}, io.Discard); err != nil || o.notifyTimeout != 5*time.Second {
		t.Fatalf("--notify-timeout 5s: %v (%v)", o, err)
	}
	if code, _, _ := runHalod(t, "--notify-timeout", "0s"); code != 2 {
		t.Fatalf("--notify-timeout 0s: exit %d, want 2", code)
	}
}
