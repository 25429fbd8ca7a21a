package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// The link between the two directors is cut (bridge port isolation: each
// still reaches the client, not the other), so both become master — split
// brain, seen on the wire as adverts from both. Healed, the lower priority
// hears the higher and steps down, the higher hears the lower and answers
// at once with an advert and a GARP burst: exactly one master within one
// advert interval (plus slack), and the client's neighbour entry and its
// pings follow the survivor.
func TestFaultSplitBrainHeals(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	n1, n2, cl := l.NS("n1"), l.NS("n2"), l.NS("cl")
	var ports []string
	for i, n := range []*lab.NS{n1, n2, cl} {
		ports = append(ports, sw.Plug(n, "eth0"))
		n.Addr("eth0", fmt.Sprintf("10.184.0.%d/24", i+1))
	}
	mac1 := n1.Link("eth0").HardwareAddr.String()
	mac2 := n2.Link("eth0").HardwareAddr.String()
	const vip = "10.184.0.100"
	const advert = time.Second
	conf := func(name string, prio int) string {
		return writeFile(t, name+".conf", fmt.Sprintf(`global_defs {
  router_id %s
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 84
  priority %d
  advert_int 1
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
`, name, prio, vip))
	}
	capt := captureAdverts(t, cl, "eth0")
	startHalod(t, n1, conf("n1", 150))
	startHalod(t, n2, conf("n2", 100))
	if waitFor(10*time.Second, func() bool { return hasAddr(n1, vip) && !hasAddr(n2, vip) }) < 0 {
		t.Fatal("n1 never became the only master")
	}
	// The client talks to the VIP, so it has a neighbour entry that GARPs
	// then update (arp_accept 0 updates, never creates).
	if out := cl.MustExec("ping", "-c", "1", "-W", "2", vip); !strings.Contains(out, "1 received") || neighMAC(cl, vip) != mac1 {
		t.Fatalf("client cannot reach the VIP on n1 (neighbour %q): %s", neighMAC(cl, vip), out)
	}

	isolate := func(on string) {
		for _, p := range ports[:2] {
			sw.NS.MustExec("bridge", "link", "set", "dev", p, "isolated", on)
		}
	}
	isolate("on")
	cut := time.Now()
	if waitFor(10*time.Second, func() bool { return hasAddr(n2, vip) }) < 0 {
		t.Fatal("with the directors cut apart, n2 never became master")
	}
	// n2's GARPs as a new master move the client to it (the split's harm).
	moved := waitFor(7*time.Second, func() bool { return neighMAC(cl, vip) == mac2 })
	if moved < 0 {
		t.Fatalf("client neighbour stayed %q during the split; n2's GARPs should have moved it to %s", neighMAC(cl, vip), mac2)
	}
	if !hasAddr(n1, vip) {
		t.Fatal("n1 lost the VIP during the split")
	}
	if len(capt.since("10.184.0.2", cut)) == 0 || len(capt.since("10.184.0.1", cut)) == 0 {
		t.Fatal("the client did not see adverts from both masters during the split")
	}
	t.Logf("split brain: both master after %v; client neighbour on n2 %v later", (time.Since(cut) - moved).Round(time.Millisecond), moved.Round(time.Millisecond))

	isolate("off")
	healed := time.Now()
	one := waitFor(10*time.Second, func() bool { return hasAddr(n1, vip) && !hasAddr(n2, vip) })
	follow := waitFor(10*time.Second, func() bool { return neighMAC(cl, vip) == mac1 })
	t.Logf("healed: one master after %v, client neighbour on n1 after %v", one.Round(time.Millisecond), follow.Round(time.Millisecond))
	if one < 0 || one > advert+advertSlack(advert) {
		t.Fatalf("one master %v after the heal, want within one advert interval (%v) + slack", one, advert)
	}
	if follow < 0 {
		t.Fatalf("client neighbour entry %q, want n1's %s", neighMAC(cl, vip), mac1)
	}
	if out := cl.MustExec("ping", "-c", "3", "-i", "0.2", "-W", "2", vip); !strings.Contains(out, "3 received") {
		t.Fatalf("VIP does not answer after the heal: %s", out)
	}
	time.Sleep(2 * advert)
	settle := healed.Add(advert + advertSlack(advert))
	if n := len(capt.since("10.184.0.2", settle)); n > 0 {
		t.Fatalf("n2 still sent %d adverts after the heal settled", n)
	}
	if hasAddr(n2, vip) || neighMAC(cl, vip) != mac1 {
		t.Fatalf("after the heal: n2 has the VIP %v, client neighbour %q", hasAddr(n2, vip), neighMAC(cl, vip))
	}
}
