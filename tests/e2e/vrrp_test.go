package e2e

import (
	"fmt"
	"os"
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

// SIGHUP with VRRP instances changed: the unchanged instance keeps its
// state and VIP (no transition, no address removed, even for a moment), a
// removed one hands its VIP over at once (priority 0), a new one starts.
func TestVRRPReloadKeepsUnchangedInstances(t *testing.T) {
	v := newVRRPLab(t, 84)
	inst := func(name string, vrid, prio int, vip string) string {
		return fmt.Sprintf("vrrp_instance %s {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int 1\n  virtual_ipaddress {\n    %s/24\n  }\n}\n",
			name, vrid, prio, vip)
	}
	both := func(prio int) string {
		return inst("VI_1", 51, prio, "10.84.0.100") + inst("VI_2", 52, prio, "10.84.0.101")
	}
	c1 := writeFile(t, "n1.conf", both(150))
	p1 := startHalod(t, v.n1, c1)
	startHalod(t, v.n2, writeFile(t, "n2.conf", both(100)))
	if waitFor(8*time.Second, func() bool { return hasAddr(v.n1, "10.84.0.100") && hasAddr(v.n1, "10.84.0.101") }) < 0 {
		t.Fatal("n1 never became master")
	}
	time.Sleep(time.Second)
	mon := v.n1.Start("ip", "monitor", "address")
	time.Sleep(200 * time.Millisecond)
	before := strings.Count(p1.Output(), "VRRP transition")

	if err := os.WriteFile(c1, []byte(inst("VI_1", 51, 150, "10.84.0.100")+inst("VI_3", 53, 150, "10.84.0.102")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p1.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// VI_2 was removed on n1: priority 0, so n2 takes over after its skew.
	if took := waitFor(3*time.Second, func() bool { return hasAddr(v.n2, "10.84.0.101") && !hasAddr(v.n1, "10.84.0.101") }); took < 0 {
		t.Fatalf("removed instance's VIP not handed over:\n%s", p1.Output())
	}
	if waitFor(8*time.Second, func() bool { return hasAddr(v.n1, "10.84.0.102") }) < 0 {
		t.Fatalf("new instance did not start:\n%s", p1.Output())
	}
	time.Sleep(time.Second)
	out := p1.Output()
	i := strings.Index(out, "reloading configuration")
	if i < 0 {
		t.Fatalf("no reload logged:\n%s", out)
	}
	for _, l := range strings.Split(out[i:], "\n") {
		if strings.Contains(l, "VRRP transition") && strings.Contains(l, "instance=VI_1 ") {
			t.Fatalf("unchanged VI_1 made a transition on reload: %s\n%s", l, out)
		}
	}
	if strings.Count(out, "VRRP transition") <= before {
		t.Fatalf("no transition at all after reload (VI_2 stop, VI_3 start expected):\n%s", out)
	}
	mon.Stop()
	for _, l := range strings.Split(mon.Output(), "\n") {
		if strings.HasPrefix(l, "Deleted") && strings.Contains(l, "10.84.0.100/") {
			t.Fatalf("the unchanged instance's VIP was removed during the reload: %s", l)
		}
	}
	if !hasAddr(v.n1, "10.84.0.100") || hasAddr(v.n2, "10.84.0.100") {
		t.Fatal("VI_1 moved")
	}
}
