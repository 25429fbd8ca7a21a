package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit"
)

// TestUnitVerifies runs `systemd-analyze verify` on the unit file, with
// the binaries it names pointed at ones that exist here.
func TestUnitVerifies(t *testing.T) {
	testkit.Require(t, "systemd-analyze")
	sa, _ := exec.LookPath("systemd-analyze")
	unit, err := os.ReadFile("halod.service")
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{"Type=notify", "ExecReload=", "CAP_BPF", "CAP_NET_RAW", "AF_NETLINK", "AF_PACKET", "WatchdogSec="} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %s", want)
		}
	}
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
		return p
	}
	text = strings.ReplaceAll(text, "/usr/sbin/halod", bin("halod"))
	text = strings.ReplaceAll(text, "/usr/bin/haloctl", bin("haloctl"))
	// A broken copy first: the check must be able to fail.
	broken := filepath.Join(t.TempDir(), "halod.service")
	os.WriteFile(broken, []byte(strings.Replace(text, "KillMode=mixed", "KillMode=sometimes", 1)), 0o644)
	if out, _ := exec.Command(sa, "verify", "--man=no", broken).CombinedOutput(); !strings.Contains(string(out), "kill mode") {
		t.Fatalf("systemd-analyze did not object to KillMode=sometimes:\n%s", out)
	}
	path := filepath.Join(dir, "halod.service")
	os.WriteFile(path, []byte(text), 0o644)
	cmd := exec.Command(sa, "verify", "--man=no", path)
	out, err := cmd.CombinedOutput()
	// verify prints problems with the unit itself as "halod.service:LINE:"
	// or "Unknown key"; it may also complain about the host's other units.
	var own []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "halod.service") || strings.Contains(l, "Unknown") {
			own = append(own, l)
		}
	}
	if len(own) > 0 {
		t.Fatalf("systemd-analyze verify (err %v):\n%s", err, out)
	}
	if err != nil {
		t.Logf("systemd-analyze verify exited %v (nothing about halod.service):\n%s", err, out)
	}
}

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{"v1.2.3": "1.2.3", "c361428-dirty": "0.0.0~git.c361428.dirty", "": "0.0.0~dev",
		"1.2.3-4-gabc": "1.2.3.4.gabc"} {
		if got := DebVersion(in); got != want {
			t.Errorf("DebVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
