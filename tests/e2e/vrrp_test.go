package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// vrrpLab is a bridge with two director nodes and a client.
type vrrpLab struct {
	l          *lab.Lab
	sw         *lab.Switch
	n1, n2, cl *lab.NS
	mac1, mac2 string
}

func newVRRPLab(t testing.TB, subnet int) *vrrpLab {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	v := &vrrpLab{l: l, sw: sw, n1: l.NS("n1"), n2: l.NS("n2"), cl: l.NS("cl")}
	for i, n := range []*lab.NS{v.n1, v.n2, v.cl} {
		sw.Plug(n, "eth0")
		n.Addr("eth0", fmt.Sprintf("10.%d.0.%d/24", subnet, i+1))
		n.Addr("eth0", fmt.Sprintf("fd00:%d::%d/64", subnet, i+1))
	}
	v.mac1 = v.n1.Link("eth0").HardwareAddr.String()
	v.mac2 = v.n2.Link("eth0").HardwareAddr.String()
	return v
}

func vrrpConf(name string, prio int, extra, vips string) string {
	return fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_garp_master_delay 1
  vrrp_garp_master_repeat 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int 1
%s
  virtual_ipaddress {
    %s
  }
}
`, name, prio, extra, vips)
}

// Two halod nodes: the higher priority wins, the VIP is on exactly one node
// and answers the client; SIGKILL of the master moves the VIP within
// Master_Down_Interval plus a margin and the client's neighbour entry
// follows (GARP); SIGTERM hands over after about the skew time.
func TestVRRPFailoverBetweenHalods(t *testing.T) {
	v := newVRRPLab(t, 81)
	const vip = "10.81.0.100"
	c1 := writeFile(t, "n1.conf", vrrpConf("n1", 150, "", vip+"/24 dev eth0"))
	c2 := writeFile(t, "n2.conf", vrrpConf("n2", 100, "", vip+"/24 dev eth0"))
	p1 := startHalod(t, v.n1, c1)
	startHalod(t, v.n2, c2)

	if waitFor(8*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
		t.Fatal("VIP never appeared on the priority-150 node")
	}
	time.Sleep(1500 * time.Millisecond) // a few adverts: the backup must stay backup
	if hasAddr(v.n2, vip) {
		t.Fatal("VIP on both nodes")
	}
	if out := v.cl.MustExec("ping", "-c", "2", "-i", "0.2", "-W", "2", vip); !strings.Contains(out, "2 received") {
		t.Fatalf("client cannot ping the VIP: %s", out)
	}
	if got := neighMAC(v.cl, vip); got != v.mac1 {
		t.Fatalf("client neighbour entry %q, want n1 %s", got, v.mac1)
	}

	// Crash the master: no priority 0, the backup waits Master_Down.
	if err := p1.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitFor(8*time.Second, func() bool { return hasAddr(v.n2, vip) })
	// Master_Down_Interval at priority 100 = 3 × 1 s + 0.609 s, counted from
	// the last advert heard (up to 1 s before the kill).
	t.Logf("SIGKILL failover: VIP on n2 after %v", took)
	if took < 0 || took > 3609*time.Millisecond+1500*time.Millisecond {
		t.Fatalf("VIP moved after %v, want within Master_Down_Interval + margin", took)
	}
	// The killed master left its VIP behind (keepalived does the same).
	v.n1.IP("addr", "del", vip+"/24", "dev", "eth0")
	if waitFor(3*time.Second, func() bool { return neighMAC(v.cl, vip) == v.mac2 }) < 0 {
		t.Fatalf("client neighbour entry still %q after GARP, want n2 %s", neighMAC(v.cl, vip), v.mac2)
	}
	if out := v.cl.MustExec("ping", "-c", "1", "-W", "2", vip); !strings.Contains(out, "1 received") {
		t.Fatalf("VIP does not answer after failover: %s", out)
	}

	// n1 comes back with priority 150 and preempts after Master_Down.
	p1 = startHalod(t, v.n1, c1)
	if waitFor(8*time.Second, func() bool { return hasAddr(v.n1, vip) && !hasAddr(v.n2, vip) }) < 0 {
		t.Fatal("restarted higher-priority node did not take the VIP back")
	}
	// A clean stop sends priority 0: n2 takes over after its skew time.
	time.Sleep(500 * time.Millisecond)
	if err := p1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took = waitFor(5*time.Second, func() bool { return hasAddr(v.n2, vip) })
	t.Logf("SIGTERM handover: VIP on n2 after %v", took)
	if took < 0 || took > 2*time.Second {
		t.Fatalf("handover after SIGTERM took %v, want about the skew time (0.61 s)", took)
	}
	if exited, _ := p1.Wait(5 * time.Second); !exited {
		t.Fatal("halod did not exit on SIGTERM")
	}
	if hasAddr(v.n1, vip) {
		t.Fatal("stopped master kept its VIP")
	}
}

// netState is what the lab's nodes know, for failure messages.
func (v *vrrpLab) netState() string {
	var b strings.Builder
	for _, n := range []*lab.NS{v.n1, v.n2} {
		out, _ := n.Exec("ip", "-br", "addr")
		fmt.Fprintf(&b, "%s addr:\n%s", n.Tag, out)
	}
	out, _ := v.cl.Exec("ip", "neigh")
	fmt.Fprintf(&b, "client neigh:\n%s", out)
	out, _ = v.sw.NS.Exec("bridge", "fdb", "show", "br", "br0")
	fmt.Fprintf(&b, "bridge fdb:\n%s", out)
	return b.String()
}

// An interface with no address yet, then deleted and made again: halod
// neither exits nor stays bound to the old interface. The instance is in
// FAULT while it cannot send, and recovers (socket, multicast membership,
// announcer) when the interface is usable again, as keepalived does.
func TestVRRPInterfaceComesAndGoes(t *testing.T) {
	v := newVRRPLab(t, 83)
	const vip = "10.83.0.100"
	// n1 starts with no IPv4 address on eth0.
	v.n1.IP("addr", "flush", "dev", "eth0")
	p := startHalod(t, v.n1, writeFile(t, "n1.conf", vrrpConf("n1", 150, "", vip+"/24")))
	time.Sleep(2 * time.Second)
	if hasAddr(v.n1, vip) {
		t.Fatal("master without an address to send from")
	}
	select {
	case <-p.Done():
		t.Fatalf("halod exited:\n%s", p.Output())
	default:
	}
	v.n1.Addr("eth0", "10.83.0.1/24")
	if waitFor(8*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
		t.Fatalf("no recovery once the address was added:\n%s", p.Output())
	}

	// The interface disappears: FAULT, VIP gone; halod keeps running.
	v.n1.IP("link", "del", "eth0")
	time.Sleep(time.Second)
	select {
	case <-p.Done():
		t.Fatalf("halod exited when its interface was deleted:\n%s", p.Output())
	default:
	}
	if !strings.Contains(p.Output(), "to=FAULT") {
		t.Fatalf("no FAULT when the interface went away:\n%s", p.Output())
	}
	// A new eth0 (another ifindex) on the same segment: halod rebinds and
	// the client reaches the VIP through the new interface.
	v.sw.Plug(v.n1, "eth0")
	v.n1.Addr("eth0", "10.83.0.1/24")
	if waitFor(10*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
		t.Fatalf("VIP not back on the new interface:\n%s", p.Output())
	}
	if out := v.cl.MustExec("ping", "-c", "1", "-W", "2", vip); !strings.Contains(out, "1 received") {
		t.Fatalf("VIP does not answer after the interface came back: %s", out)
	}
	if mac := v.n1.Link("eth0").HardwareAddr.String(); neighMAC(v.cl, vip) != mac {
		t.Fatalf("client neighbour %q, want the new interface's %s", neighMAC(v.cl, vip), mac)
	}
	// Adverts go out of the new interface: a second node stays backup.
	startHalod(t, v.n2, writeFile(t, "n2.conf", vrrpConf("n2", 100, "", vip+"/24")))
	time.Sleep(5 * time.Second)
	if hasAddr(v.n2, vip) {
		t.Fatal("n2 does not hear n1's adverts from the new interface")
	}
}
