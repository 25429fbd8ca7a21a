package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// A real behind another interface of the director: frames leave through
// the devmap redirect, with the egress interface's MAC as source. UDP, so
// the check needs no return path: the real counts what arrives.
func TestXDPRedirectToAnotherInterface(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	front, back := l.Switch("swf"), l.Switch("swb")
	dir, cl, real := l.NS("dir"), l.NS("cl"), l.NS("real")
	front.Plug(cl, "eth0")
	front.Plug(dir, "eth0")
	port := back.Plug(dir, "eth1")
	back.Plug(real, "eth0")
	// The redirected frames land in the back bridge through this port: it
	// needs an XDP program (docs/lab.md#veth-peer-needs-xdp).
	attachPass(t, back.NS, port)
	cl.Addr("eth0", "10.92.0.2/24")
	cl.TxOff("eth0") // checksums must be complete before XDP moves the frame (docs/lab.md#checksum-offload)
	dir.Addr("eth0", "10.92.0.1/24")
	dir.Addr("eth1", "10.92.1.1/24")
	real.Addr("eth0", "10.92.1.11/24")
	const vip = "10.92.0.100"
	real.IP("addr", "add", vip+"/32", "dev", "lo")
	for _, k := range []string{"all", "eth0"} {
		real.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
		real.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		real.Sysctl("net.ipv4.conf."+k+".rp_filter", "0")
	}
	var pc net.PacketConn
	if err := real.Do(func() (err error) { pc, err = net.ListenPacket("udp4", vip+":53"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	conf := writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 81
  priority 255
  virtual_ipaddress {
    %s/24
  }
}
virtual_server %s 53 {
  delay_loop 5
  lb_algo rr
  lb_kind DR
  protocol UDP
  real_server 10.92.1.11 53 {
  }
}
dataplane {
  backend xdp
  interface eth0
}
`, vip, vip))
	sock := filepath.Join(t.TempDir(), "halod.sock")
	p := startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(l.BPFFS(), "halo"), "--control", sock,
		"--metrics-addr", "127.0.0.1:9650")
	if waitFor(10*time.Second, func() bool { return hasAddr(dir, vip) }) < 0 {
		t.Fatalf("no VIP:\n%s", p.Output())
	}
	time.Sleep(500 * time.Millisecond) // first Apply resolves the real's MAC

	const n = 20
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 100)
		c := 0
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for c < n {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				break
			}
			c++
		}
		got <- c
	}()
	if err := cl.Do(func() error {
		c, err := net.Dial("udp4", vip+":53")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < n; i++ {
			fmt.Fprintf(c, "q%d", i)
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	d := &drLab{dir: dir}
	m := d.scrape(t)
	if c := <-got; c != n {
		t.Fatalf("the real received %d of %d datagrams through the redirect\n%s\n%s", c, n, p.Output(), grepLines(m, "halo_xdp"))
	}
	if !strings.Contains(m, fmt.Sprintf(`halo_xdp_packets_total{reason="redirect"} %d`, n)) {
		t.Fatalf("redirect counter:\n%s", grepLines(m, "halo_xdp"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
