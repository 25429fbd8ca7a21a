package e2e

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// use_vmac: the VIP lives on a macvlan with 00:00:5e:00:01:VRID, and the
// client's neighbour entry for the VIP is the virtual MAC, not the node's.
func TestUseVMAC(t *testing.T) {
	v := newVRRPLab(t, 84)
	const vip = "10.84.0.100"
	conf := writeFile(t, "n1.conf", vrrpConf("n1", 150, "  use_vmac", vip+"/24"))
	p := startHalod(t, v.n1, conf)
	if waitFor(8*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
		t.Fatal("never became master")
	}
	link, _ := exec.Command("ip", "-n", v.n1.Name, "link", "show", "vrrp.51").CombinedOutput()
	if !strings.Contains(string(link), "00:00:5e:00:01:33") || !strings.Contains(string(link), "macvlan") && !strings.Contains(string(link), "@eth0") {
		t.Fatalf("no VMAC interface:\n%s", link)
	}
	addr, _ := exec.Command("ip", "-n", v.n1.Name, "-o", "addr", "show", "dev", "vrrp.51").CombinedOutput()
	if !strings.Contains(string(addr), vip) {
		t.Fatalf("VIP not on the VMAC:\n%s", addr)
	}
	if out := v.cl.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "2", vip); !strings.Contains(out, "2 received") {
		t.Fatalf("client cannot ping the VIP: %s", out)
	}
	if got := neighMAC(v.cl, vip); got != "00:00:5e:00:01:33" {
		t.Fatalf("client neighbour entry %q, want the virtual MAC", got)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(5 * time.Second)
	if out, err := exec.Command("ip", "-n", v.n1.Name, "link", "show", "vrrp.51").CombinedOutput(); err == nil {
		t.Fatalf("VMAC left behind after stop:\n%s", out)
	}
}
