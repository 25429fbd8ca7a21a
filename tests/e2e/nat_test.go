package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// TestXDPNAT: halod serves an lvs-nat.conf-shaped configuration with the
// XDP data plane on both sides of the director, whose kernel does not
// forward (ip_forward=0: a packet XDP does not handle goes nowhere). The
// reals' default route is the director. Clients reach VIP:443, the reals
// serve on 8443 and name themselves; replies leave from VIP:443. Several
// client addresses each keep one real (persistence_timeout) while the
// clients spread over all reals. A UDP service (5353 -> 5300) answers
// from VIP:5353.
func TestXDPNAT(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	front, back := l.Switch("swf"), l.Switch("swb")
	dir, cl := l.NS("dir"), l.NS("cl")
	front.Plug(cl, "eth0")
	// Frames the director redirects land in the bridges through its
	// ports: those need an XDP program (docs/lab.md#veth-peer-needs-xdp).
	attachPass(t, front.NS, front.Plug(dir, "eth0"))
	attachPass(t, back.NS, back.Plug(dir, "eth1"))
	const vip = "10.95.0.100"
	dir.Addr("eth0", "10.95.0.1/24")
	dir.Addr("eth1", "10.95.1.2/24")
	dir.Sysctl("net.ipv4.ip_forward", "0")
	if got := strings.TrimSpace(dir.MustExec("sysctl", "-n", "net.ipv4.ip_forward")); got != "0" {
		t.Fatalf("director forwards: ip_forward=%s", got)
	}
	// Checksums must be complete before XDP rewrites a frame
	// (docs/lab.md#checksum-offload).
	dir.TxOff("eth0")
	dir.TxOff("eth1")
	cl.TxOff("eth0")
	const clients = 30
	for i := 0; i < clients; i++ {
		cl.Addr("eth0", fmt.Sprintf("10.95.0.%d/24", 20+i))
	}
	// A remote client behind a router: the director reaches its network
	// through a gateway route (where most clients of a real director are).
	rt, rc := l.NS("rt"), l.NS("rc")
	front.Plug(rt, "eth0")
	l.Veth(rt, "eth1", rc, "eth0")
	rt.Addr("eth0", "10.95.0.254/24")
	rt.Addr("eth1", "10.95.9.1/24")
	rt.Sysctl("net.ipv4.ip_forward", "1")
	rc.Addr("eth0", "10.95.9.2/24")
	rc.Route("default", "10.95.9.1")
	for _, n := range []*lab.NS{rt, rc} {
		n.TxOff("eth0")
	}
	rt.TxOff("eth1")
	dir.Route("10.95.9.0/24", "10.95.0.254")

	names := []string{"real1", "real2", "real3"}
	var rsConf strings.Builder
	for i, name := range names {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		back.Plug(ns, "eth0")
		ip := fmt.Sprintf("10.95.1.%d", 11+i)
		ns.Addr("eth0", ip+"/24")
		ns.TxOff("eth0")
		ns.Route("default", "10.95.1.1") // the director's floating gateway address
		var hl net.Listener
		var pc net.PacketConn
		if err := ns.Do(func() (err error) {
			if hl, err = net.Listen("tcp", "0.0.0.0:8443"); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp4", "0.0.0.0:5300")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hl.Close(); pc.Close() })
		go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s\n", name) }))
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
		fmt.Fprintf(&rsConf, `   real_server %s 8443 {
      weight 1
      TCP_CHECK {
         connect_timeout 1
      }
   }
`, ip)
	}

	conf := writeFile(t, "nat.conf", fmt.Sprintf(`
global_defs {
   router_id lb-nat
}
vrrp_instance VI_NAT {
   state MASTER
   interface eth0
   virtual_router_id 61
   priority 255
   virtual_ipaddress {
      %s/24 dev eth0
   }
   virtual_ipaddress_excluded {
      10.95.1.1/24 dev eth1
   }
}
virtual_server %s 443 {
   delay_loop 1
   lb_algo wlc
   lb_kind NAT
   protocol TCP
   persistence_timeout 300
%s}
virtual_server %s 5353 {
   delay_loop 5
   lb_algo rr
   lb_kind NAT
   protocol UDP
   real_server 10.95.1.11 5300 {
   }
   real_server 10.95.1.12 5300 {
   }
   real_server 10.95.1.13 5300 {
   }
}
dataplane {
   backend xdp
   interface eth0 eth1
}
`, vip, vip, rsConf.String(), vip))
	sock := filepath.Join(t.TempDir(), "halod.sock")
	bpffs := filepath.Join(l.BPFFS(), "halo")
	p := startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", bpffs, "--control", sock,
		"--metrics-addr", "127.0.0.1:9650")
	get := func(src string) (string, error) {
		var c net.Conn
		if err := cl.Do(func() (err error) {
			d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			c, err = d.Dial("tcp", vip+":443")
			return err
		}); err != nil {
			return "", err
		}
		defer c.Close()
		return request(t, c), nil
	}
	if waitFor(20*time.Second, func() bool {
		st := haloctlStatus(t, sock)
		if st == nil || len(st.VirtualServers) == 0 {
			return false
		}
		for _, vs := range st.VirtualServers {
			for _, r := range vs.Reals {
				if !r.Up {
					return false
				}
			}
		}
		name, err := get("10.95.0.20")
		return err == nil && name != ""
	}) < 0 {
		t.Fatalf("the NAT VIP never served: %+v\n%s", haloctlStatus(t, sock), p.Output())
	}

	// Many connections from many clients: each client stays on one real,
	// and the clients spread over every real.
	const perClient = 5
	perReal := map[string]int{}
	for i := 0; i < clients; i++ {
		src := fmt.Sprintf("10.95.0.%d", 20+i)
		first := ""
		for j := 0; j < perClient; j++ {
			name, err := get(src)
			if err != nil || name == "" {
				m := (&drLab{dir: dir}).scrape(t)
				t.Fatalf("client %s connection %d: %q %v\n%s\n%s", src, j, name, err, grepLines(m, "halo_xdp"), p.Output())
			}
			if !strings.HasPrefix(name, "real") {
				t.Fatalf("unexpected body %q", name)
			}
			if first == "" {
				first = name
			} else if name != first {
				t.Fatalf("client %s went to %s then %s despite persistence", src, first, name)
			}
			perReal[name]++
		}
	}
	t.Logf("%d connections over %d clients: %v", clients*perClient, clients, perReal)
	for _, name := range names {
		if perReal[name] == 0 {
			t.Errorf("%s got no connection: %v", name, perReal)
		}
	}

	// UDP: the answer comes back from VIP:5353, whichever real made it.
	udpReals := map[string]bool{}
	for i := 0; i < 30; i++ {
		var pc net.PacketConn
		if err := cl.Do(func() (err error) { pc, err = net.ListenPacket("udp4", "10.95.0.20:0"); return err }); err != nil {
			t.Fatal(err)
		}
		pc.SetDeadline(time.Now().Add(2 * time.Second))
		q := fmt.Sprintf("q%d", i)
		if _, err := pc.WriteTo([]byte(q), &net.UDPAddr{IP: net.ParseIP(vip), Port: 5353}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		pc.Close()
		if err != nil {
			t.Fatalf("UDP query %d: %v", i, err)
		}
		if from.String() != vip+":5353" {
			t.Fatalf("UDP answer from %s, want %s:5353", from, vip)
		}
		name, body, _ := strings.Cut(string(buf[:n]), ":")
		if body != q {
			t.Fatalf("UDP answer %q to %q", buf[:n], q)
		}
		udpReals[name] = true
	}
	if len(udpReals) < 2 {
		t.Errorf("UDP answers all came from %v", udpReals)
	}

	// A director that never saw a flow still translates its replies (the
	// backup after a failover): with a keep-alive connection open from the
	// remote client, the flow table and persistence pins are wiped; the
	// next request on it must be forwarded by the table and answered
	// through the reverse-NAT index and the next hop of the client's
	// network (the gateway route, mirrored into the next-hop map).
	var held net.Conn
	if err := rc.Do(func() (err error) {
		held, err = net.DialTimeout("tcp", vip+":443", 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldReal := request(t, held)
	if heldReal == "" {
		t.Fatal("no answer on the held connection")
	}
	pinned := func(name string) *ebpf.Map {
		paths, _ := filepath.Glob(filepath.Join(bpffs, "maps-v*", name))
		if len(paths) != 1 {
			t.Fatalf("pinned %s: %v", name, paths)
		}
		m, err := ebpf.LoadPinnedMap(paths[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	nexthops := pinned("nexthops")
	key := make([]byte, 20) // prefixlen, then ::ffff:10.95.9.2
	binary.NativeEndian.PutUint32(key, 128)
	copy(key[4:], net.ParseIP("10.95.9.2").To16())
	val := make([]byte, 12)
	if err := nexthops.Lookup(key, val); err != nil || binary.NativeEndian.Uint32(val) != uint32(dir.Link("eth0").Index) ||
		net.HardwareAddr(val[4:10]).String() != rt.Link("eth0").HardwareAddr.String() {
		t.Fatalf("next hop of the remote client: %x %v (want eth0 and the router's MAC)", val, err)
	}
	before := grepLines((&drLab{dir: dir}).scrape(t), "halo_xdp_packets")
	for _, name := range []string{"conntrack", "persist"} {
		m := pinned(name)
		var keys [][]byte
		k := make([]byte, m.KeySize())
		for it := m.Iterate(); it.Next(&k, new([]byte)); {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			m.Delete(k)
		}
	}
	if got := request(t, held); got != heldReal {
		t.Fatalf("after the flow table was wiped the held connection answered %q, want %q\n%s\n%s", got, heldReal, before,
			grepLines((&drLab{dir: dir}).scrape(t), "halo_xdp"))
	}

	// It was XDP: the kernel forwards nothing, and the counters saw both
	// directions.
	m := (&drLab{dir: dir}).scrape(t)
	for _, reason := range []string{"nat_dnat", "nat_reply"} {
		var n float64
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, `halo_xdp_packets_total{reason="`+reason+`"}`) {
				fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &n)
			}
		}
		if n < clients*perClient*3 {
			t.Errorf("%s counted %v packets for %d connections\n%s", reason, n, clients*perClient, grepLines(m, "halo_xdp"))
		}
	}
}
