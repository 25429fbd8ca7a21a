package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// TUN over IPv6: ip6ip6 from the director, decapsulated on each real by
// bpf/tundecap.c, answered from the VIP on the real's lo.
func TestXDPTUNIPv6(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	dir, cl := l.NS("dir"), l.NS("cl")
	attachPass(t, sw.NS, sw.Plug(dir, "eth0")) // docs/lab.md#veth-peer-needs-xdp
	sw.Plug(cl, "eth0")
	const vip = "fd96::100"
	dir.Addr("eth0", "fd96::1/64")
	cl.Addr("eth0", "fd96::2/64")
	for _, n := range []*lab.NS{dir, cl} {
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	names := []string{"real1", "real2"}
	var rs strings.Builder
	for i, name := range names {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		sw.Plug(ns, "eth0")
		ip := fmt.Sprintf("fd96::%d", 11+i)
		ns.Addr("eth0", ip+"/64")
		ns.TxOff("eth0")
		tunReal(t, ns, vip, 0, name)
		fmt.Fprintf(&rs, "  real_server %s 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
	}
	conf := writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_6 {
  state MASTER
  interface eth0
  virtual_router_id 97
  priority 255
  virtual_ipaddress {
    %s/64
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
	p := startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(l.BPFFS(), "halo"))
	get := func() (string, error) { return cl.HTTPGet("["+vip+"]:80", "/", 3*time.Second) }
	if waitFor(20*time.Second, func() bool { _, err := get(); return err == nil }) < 0 {
		_, err := get()
		t.Fatalf("the IPv6 TUN VIP never served: %v\n%s", err, p.Output())
	}
	n := map[string]int{}
	for i := 0; i < 60; i++ {
		name, err := get()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		n[strings.TrimSpace(name)]++
	}
	t.Logf("60 connections through ip6ip6: %v", n)
	for _, name := range names {
		if n[name] == 0 {
			t.Errorf("%s got no connection: %v", name, n)
		}
	}
}
