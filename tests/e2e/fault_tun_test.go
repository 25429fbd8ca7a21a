package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// Two directors with VRRP and XDP TUN (ipip), their kernels forwarding
// nothing; three reals decapsulate with the TC program, hold the VIP on lo
// and answer the clients directly from the VIP. Clients: one on the VIP's
// network, one behind a router. The master dies (halod SIGKILL, link down)
// under paced TCP streams and UDP request/response from both clients; the
// backup, with an empty flow table, encapsulates every established flow to
// the real the flow key and the Maglev table give: every stream finishes
// byte-exact with most of its bytes through the backup, no reset, every
// UDP answer from VIP:5353.
func TestFaultTUNMasterKilledBackupTakesOver(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) { faultTUN(t, pairFamily{subnet: 185}) })
	t.Run("ipv6", func(t *testing.T) { faultTUN(t, pairFamily{v6: true, subnet: 187}) })
}

func faultTUN(t *testing.T, p pairFamily) {
	lab.RequireRoot(t)
	l := lab.New(t)
	vip := p.ip(0, 100)
	sw := l.Switch("sw")
	cl := l.NS("cl")
	f := directorPair(l, p.subnet, vip, cl)
	sw.Plug(cl, "eth0")
	cl.Addr("eth0", p.cidr(0, 2))
	cl.TxOff("eth0") // docs/lab.md#checksum-offload

	rt, rc := p.remoteClient(t, l, sw)

	for i, d := range f.dirs {
		// XDP_TX'd frames need an XDP program on the veth peer
		// (docs/lab.md#veth-peer-needs-xdp).
		attachPass(t, sw.NS, sw.Plug(d, "eth0"))
		d.Addr("eth0", p.cidr(0, 1+2*i)) // .1 and .3
		d.TxOff("eth0")
		p.forwarding(t, d, false)
	}

	var tcpReals, udpReals strings.Builder
	for i := 0; i < 3; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		sw.Plug(ns, "eth0")
		ip := p.ip(0, 11+i)
		ns.Addr("eth0", p.cidr(0, 11+i))
		ns.TxOff("eth0")
		ns.Route(p.network(9), p.ip(0, 254))
		tunReal(t, ns, vip, 0, "")
		servePacedReal(t, ns, ":80", fmt.Sprintf("real%d", i+1))
		udpEchoReal(t, ns, net.JoinHostPort(vip, "5353")) // answers leave from the VIP
		f.reals = append(f.reals, ns)
		fmt.Fprintf(&tcpReals, "  real_server %s 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
		fmt.Fprintf(&udpReals, "  real_server %s 5353 {\n    weight 1\n  }\n", ip)
	}
	for i := range f.dirs {
		f.socks[i] = t.TempDir() + "/halod.sock"
		f.confs[i] = writeFile(t, fmt.Sprintf("d%d.conf", i+1), fmt.Sprintf(`global_defs {
  router_id d%d
  vrrp_garp_master_delay 1
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 81
  priority %d
  version 3
  advert_int 0.1
  virtual_ipaddress {
    %s dev eth0%s
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo wlc
  lb_kind TUN
  protocol TCP
%s}
virtual_server %s 5353 {
  delay_loop 1
  lb_algo rr
  lb_kind TUN
  protocol UDP
%s}
dataplane {
  backend xdp
  interface eth0
}
`, i+1, 150-50*i, p.cidr(0, 100), p.vipOpts(), vip, tcpReals.String(), vip, udpReals.String()))
	}

	d2 := f.dirs[1].Link("eth0").HardwareAddr.String()
	m := &masterDies{
		f:       f,
		fam:     p,
		links:   []string{"eth0"},
		vips:    []string{vip},
		follow:  []neighWatch{{cl, vip, d2}, {rt, vip, d2}},
		clients: []*lab.NS{cl, rc},
		tcpAddr: net.JoinHostPort(vip, "80"),
		udpAddr: netip.AddrPortFrom(netip.MustParseAddr(vip), 5353),
	}
	m.run(t)

	counts := map[string]float64{}
	for _, reason := range []string{"ring", "ct_prev", "tun_encap"} {
		counts[reason] = xdpCount(t, f.dirs[1], reason)
	}
	t.Logf("d2 data plane after the failover: %v", counts)
	if counts["ring"]+counts["ct_prev"] <= 0 {
		t.Errorf("d2 chose no real without a flow entry: %v", counts)
	}
	for _, reason := range []string{"tun_encap"} {
		if n := counts[reason]; n == 0 {
			t.Errorf("d2 counted no %s packet: %v", reason, counts)
		}
	}
}
