package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// DR over IPv6: a VRRPv3 IPv6 VIP on the director, XDP sending the client's
// connections to two reals that hold the VIP on lo.
func TestXDPDirectRoutingIPv6(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	dir, cl := l.NS("dir"), l.NS("cl")
	const vip = "fd00:93::100"
	port := sw.Plug(dir, "eth0")
	attachPass(t, sw.NS, port)
	sw.Plug(cl, "eth0")
	dir.Addr("eth0", "fd00:93::1/64")
	cl.Addr("eth0", "fd00:93::2/64")
	for _, n := range []*lab.NS{dir, cl} {
		n.TxOff("eth0")
	}
	var rs strings.Builder
	for i := 1; i <= 2; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i))
		sw.Plug(ns, "eth0")
		ip := fmt.Sprintf("fd00:93::%d", 10+i)
		ns.Addr("eth0", ip+"/64")
		ns.TxOff("eth0")
		ns.IP("-6", "addr", "add", vip+"/128", "dev", "lo")
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "[::]:80"); return err }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		name := fmt.Sprintf("real%d", i)
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) }))
		fmt.Fprintf(&rs, "  real_server %s 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
	}
	conf := writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_6 {
  state MASTER
  interface eth0
  virtual_router_id 93
  priority 255
  virtual_ipaddress {
    %s/64
  }
}
virtual_server %s 80 {
  delay_loop 2
  lb_algo rr
  lb_kind DR
  protocol TCP
%s}
dataplane {
  backend xdp
  interface eth0
}
`, vip, vip, rs.String()))
	startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(l.BPFFS(), "halo"))

	get := func() (string, error) { return cl.HTTPGet("["+vip+"]:80", "/", 3*time.Second) }
	if waitFor(15*time.Second, func() bool { _, err := get(); return err == nil }) < 0 {
		_, err := get()
		t.Fatalf("the IPv6 VIP never served: %v", err)
	}
	n := map[string]int{}
	// rr hashes the 5-tuple into the weighted table: 200 connections from
	// random source ports split binomially; 70 is 4 sigma below half.
	for i := 0; i < 200; i++ {
		name, err := get()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		n[name]++
	}
	t.Logf("200 IPv6 connections: %v", n)
	if n["real1"] < 70 || n["real2"] < 70 {
		t.Fatalf("round robin over IPv6 uneven: %v", n)
	}
}
