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

// NAT over IPv6, both ways in XDP, with the director's IPv6 forwarding
// off: HTTP to [VIP]:443 reaches the reals on 8443 and comes back from the
// VIP; a UDP answer comes back from [VIP]:5353 (IPv6 UDP checksums are
// mandatory: a wrong incremental update would make the client drop it).
func TestXDPNATIPv6(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	front, back := l.Switch("swf"), l.Switch("swb")
	dir, cl := l.NS("dir"), l.NS("cl")
	front.Plug(cl, "eth0")
	// Redirected frames land in the bridges through the director's ports
	// (docs/lab.md#veth-peer-needs-xdp).
	attachPass(t, front.NS, front.Plug(dir, "eth0"))
	attachPass(t, back.NS, back.Plug(dir, "eth1"))
	const vip = "fd95::100"
	dir.Addr("eth0", "fd95::1/64")
	dir.Addr("eth1", "fd95:1::1/64")
	dir.Sysctl("net.ipv6.conf.all.forwarding", "0")
	if got := strings.TrimSpace(dir.MustExec("sysctl", "-n", "net.ipv6.conf.all.forwarding")); got != "0" {
		t.Fatalf("director forwards IPv6: %s", got)
	}
	cl.Addr("eth0", "fd95::2/64")
	for _, n := range []*lab.NS{dir, cl} {
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	dir.TxOff("eth1")
	names := []string{"real1", "real2"}
	var rs strings.Builder
	for i, name := range names {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		back.Plug(ns, "eth0")
		ip := fmt.Sprintf("fd95:1::%d", 11+i)
		ns.Addr("eth0", ip+"/64")
		ns.TxOff("eth0")
		ns.Route("default", "fd95:1::1")
		var ln net.Listener
		var pc net.PacketConn
		if err := ns.Do(func() (err error) {
			if ln, err = net.Listen("tcp", "[::]:8443"); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp6", "[::]:5300")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close(); pc.Close() })
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) }))
		go func() {
			buf := make([]byte, 512)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(name+":"+string(buf[:n])), from)
			}
		}()
		fmt.Fprintf(&rs, "  real_server %s 8443 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
	}
	conf := writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_6 {
  state MASTER
  interface eth0
  virtual_router_id 95
  priority 255
  virtual_ipaddress {
    %s/64
  }
}
virtual_server %s 443 {
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol TCP
%s}
virtual_server %s 5353 {
  lb_algo rr
  lb_kind NAT
  protocol UDP
  real_server fd95:1::11 5300 {
  }
}
dataplane {
  backend xdp
  interface eth0 eth1
}
`, vip, vip, rs.String(), vip))
	p := startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(l.BPFFS(), "halo"))

	get := func() (string, error) { return cl.HTTPGet("["+vip+"]:443", "/", 3*time.Second) }
	if waitFor(20*time.Second, func() bool { _, err := get(); return err == nil }) < 0 {
		_, err := get()
		t.Fatalf("the IPv6 NAT VIP never served: %v\n%s", err, p.Output())
	}
	n := map[string]int{}
	for i := 0; i < 100; i++ {
		name, err := get()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		n[strings.TrimSpace(name)]++
	}
	t.Logf("100 IPv6 NAT connections: %v", n)
	for _, name := range names {
		if n[name] == 0 {
			t.Errorf("%s got no connection: %v", name, n)
		}
	}

	var pc net.PacketConn
	if err := cl.Do(func() (err error) { pc, err = net.ListenPacket("udp6", "[fd95::2]:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := pc.WriteTo([]byte("q6"), &net.UDPAddr{IP: net.ParseIP(vip), Port: 5353}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	c, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("UDP over IPv6 NAT: %v", err)
	}
	if want := "[" + vip + "]:5353"; from.String() != want || string(buf[:c]) != "real1:q6" {
		t.Fatalf("UDP answer %q from %s, want real1:q6 from %s", buf[:c], from, want)
	}
}
