package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// TestXDPTUN: halod with `lb_kind TUN` encapsulates the client's packets
// in ipip to the reals; each real runs the TC decapsulation program
// (bpf/tundecap.c; this kernel has no ipip module) on its interface, holds
// the VIP on lo and answers the client directly, as in DR. The third real
// sits behind a router (TUN, unlike DR, reaches it through the router's
// MAC). Real HTTP through the tunnel, spread over all reals, and the
// tun_encap counter.
func TestXDPTUN(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	dir, cl := l.NS("dir"), l.NS("cl")
	// XDP_TX'd frames need an XDP program on the peer (docs/lab.md#veth-peer-needs-xdp).
	attachPass(t, sw.NS, sw.Plug(dir, "eth0"))
	sw.Plug(cl, "eth0")
	const vip = "10.96.0.100"
	dir.Addr("eth0", "10.96.0.1/24")
	cl.Addr("eth0", "10.96.0.2/24")
	for _, n := range []*lab.NS{dir, cl} {
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	rt := l.NS("rt")
	sw.Plug(rt, "eth0")
	rt.Addr("eth0", "10.96.0.254/24")
	rt.Sysctl("net.ipv4.ip_forward", "1")
	for _, k := range []string{"all", "default", "eth0"} {
		rt.Sysctl("net.ipv4.conf."+k+".rp_filter", "0") // the real answers from the VIP, routed back
	}
	rt.TxOff("eth0")
	dir.Route("10.96.5.0/24", "10.96.0.254")
	names := []string{"real1", "real2", "real3"}
	var rs strings.Builder
	for i, name := range names {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		ip := fmt.Sprintf("10.96.0.%d", 11+i)
		if i < 2 {
			sw.Plug(ns, "eth0")
			ns.Addr("eth0", ip+"/24")
		} else {
			ip = "10.96.5.11"
			l.Veth(rt, "eth1", ns, "eth0")
			rt.Addr("eth1", "10.96.5.1/24")
			rt.TxOff("eth1")
			ns.Addr("eth0", ip+"/24")
			ns.Route("default", "10.96.5.1")
		}
		ns.TxOff("eth0")
		tunReal(t, ns, vip, 0, name)
		fmt.Fprintf(&rs, "  real_server %s 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
	}
	conf := writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 96
  priority 255
  virtual_ipaddress {
    %s/24
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lb_kind TUN
  protocol TCP
%s}
dataplane {
  backend xdp
  interface eth0
}
`, vip, vip, rs.String()))
	p := startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(l.BPFFS(), "halo"),
		"--metrics-addr", "127.0.0.1:9650")
	get := func() (string, error) { return cl.HTTPGet(vip+":80", "/", 3*time.Second) }
	if waitFor(20*time.Second, func() bool { _, err := get(); return err == nil }) < 0 {
		_, err := get()
		t.Fatalf("the TUN VIP never served: %v\n%s", err, p.Output())
	}
	n := map[string]int{}
	const conns = 100
	for i := 0; i < conns; i++ {
		name, err := get()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		n[strings.TrimSpace(name)]++
	}
	t.Logf("%d connections through ipip: %v", conns, n)
	for _, name := range names {
		if n[name] == 0 {
			t.Errorf("%s got no connection: %v", name, n)
		}
	}
	m := (&drLab{dir: dir}).scrape(t)
	var enc float64
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, `halo_xdp_packets_total{reason="tun_encap"}`) {
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &enc)
		}
	}
	if enc < conns*3 {
		t.Fatalf("tun_encap counted %v packets for %d connections\n%s", enc, conns, grepLines(m, "halo_xdp"))
	}
}
