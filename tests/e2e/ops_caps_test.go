package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Once up, halod runs with only the capabilities its configuration needs,
// on every thread, and still does its job: XDP DR serves connections and a
// reload of the same configuration works. A reload that would need a
// capability it gave up (a script run as another user needs CAP_SETUID) is
// refused with that reason, and the running configuration keeps serving.
func TestOpsCapabilitiesDroppedAfterSetup(t *testing.T) {
	d := newDRLab(t, 143, "generic")
	halod := d.startHalod(t)
	d.waitReady(t)
	// The reals are up before halod says it is ready; the drop happens in
	// between (capability by capability, on every thread).
	if waitFor(15*time.Second, func() bool { return strings.Contains(halod.Output(), "halod ready") }) < 0 {
		t.Fatalf("halod never ready:\n%s", halod.Output())
	}

	// The DR config has no scripts and no low port: CAP_NET_ADMIN,
	// CAP_NET_RAW, CAP_PERFMON and CAP_BPF (bits 12, 13, 38, 39), the
	// bounding set cut to the same.
	const want = uint64(1)<<12 | 1<<13 | 1<<38 | 1<<39
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(halod.Pid()) + "/task/*/status")
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads of halod (pid %d): %v %v", halod.Pid(), tasks, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"CapEff", "CapPrm", "CapBnd"} {
			if got := capField(string(b), field); got != want {
				t.Errorf("%s %s = %x, want %x", task, field, got, want)
			}
		}
	}

	serve := func(when string) {
		t.Helper()
		for i := 0; i < 10; i++ {
			if _, err := d.get(t); err != nil {
				t.Fatalf("%s: connection %d through the VIP: %v", when, i, err)
			}
		}
	}
	serve("after the drop")
	if out, err := haloctl(t, d.sock, "reload"); err != nil {
		t.Fatalf("reload of the same config with reduced capabilities: %v\n%s", err, out)
	}

	conf, err := os.ReadFile(d.conf)
	if err != nil {
		t.Fatal(err)
	}
	withUser := strings.Replace(string(conf), "  priority 255\n",
		"  priority 255\n  notify /bin/true\n", 1)
	withUser = "global_defs {\n  script_user nobody\n  enable_script_security\n}\n" + withUser
	if withUser == "global_defs {\n  script_user nobody\n  enable_script_security\n}\n"+string(conf) {
		t.Fatal("test config shape changed: no priority line to add a notify script after")
	}
	if err := os.WriteFile(d.conf, []byte(withUser), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := haloctl(t, d.sock, "reload")
	if err == nil || !strings.Contains(out, "CAP_SETUID") || !strings.Contains(out, "restart halod") {
		t.Fatalf("reload that needs CAP_SETUID: err %v\n%s", err, out)
	}
	t.Logf("refused as it should be: %s", strings.TrimSpace(out))
	serve("after the refused reload")
}

func capField(status, field string) uint64 {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return ^uint64(0)
}
