package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// The classic keepalived NAT pair, in XDP: two directors, each with the
// external VIP on its client-facing eth0 and the reals' gateway VIP on its
// real-facing eth1, two VRRP instances in one vrrp_sync_group so both
// addresses move together. The directors' kernels forward nothing
// (forwarding off): both directions of NAT run in XDP. The reals' default
// route is the gateway VIP. Clients: one on the VIP's network, one behind
// a router. VIP:80 → real:8080 (TCP) and VIP:5353 → real:5300 (UDP).
//
// The master dies (halod SIGKILL, both links down) under paced TCP streams
// and UDP request/response from both clients. The backup has seen none of
// the flows: its forward selection must pick the same real from the flow
// key and the Maglev table, and its reverse translation must come from the
// configuration (the reverse-NAT index), with replies reaching the client
// through the next hop of the client's network or the MAC the flow's
// packets now arrive from. Every stream finishes byte-exact with most of
// its bytes through the backup, without a reset or a long stall, and every
// UDP answer comes from VIP:5353.
func TestFaultNATMasterKilledBackupTakesOver(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) { faultNAT(t, pairFamily{subnet: 184}) })
	t.Run("ipv6", func(t *testing.T) { faultNAT(t, pairFamily{v6: true, subnet: 186}) })
}

func faultNAT(t *testing.T, p pairFamily) {
	lab.RequireRoot(t)
	l := lab.New(t)
	vip, gw := p.ip(0, 100), p.ip(1, 1)
	front, back := l.Switch("swf"), l.Switch("swb")
	cl := l.NS("cl")
	f := directorPair(l, p.subnet, vip, cl)
	front.Plug(cl, "eth0")
	cl.Addr("eth0", p.cidr(0, 2))
	cl.TxOff("eth0") // docs/lab.md#checksum-offload

	// A remote client behind a router: where most clients of a director
	// are, and a next hop the backup resolves from its routes.
	rt, rc := p.remoteClient(t, l, front)

	for i, d := range f.dirs {
		// Frames a director sends back out or redirects land in the
		// bridges through its ports (docs/lab.md#veth-peer-needs-xdp).
		attachPass(t, front.NS, front.Plug(d, "eth0"))
		attachPass(t, back.NS, back.Plug(d, "eth1"))
		d.Addr("eth0", p.cidr(0, 1+2*i)) // .1 and .3
		d.Addr("eth1", p.cidr(1, 2+i))   // .2 and .3
		d.TxOff("eth0")
		d.TxOff("eth1")
		p.forwarding(t, d, false)
		d.Route(p.network(9), p.ip(0, 254))
	}

	var tcpReals, udpReals strings.Builder
	for i := 0; i < 3; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		back.Plug(ns, "eth0")
		ip := p.ip(1, 11+i)
		ns.Addr("eth0", p.cidr(1, 11+i))
		ns.TxOff("eth0")
		ns.Route("default", gw)
		servePacedReal(t, ns, ":8080", fmt.Sprintf("real%d", i+1))
		udpEchoReal(t, ns, ":5300")
		f.reals = append(f.reals, ns)
		fmt.Fprintf(&tcpReals, "  real_server %s 8080 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
		fmt.Fprintf(&udpReals, "  real_server %s 5300 {\n    weight 1\n  }\n", ip)
	}
	vipCIDR, gwCIDR := p.cidr(0, 100), p.cidr(1, 1)
	for i := range f.dirs {
		prio := 150 - 50*i
		f.socks[i] = t.TempDir() + "/halod.sock"
		f.confs[i] = writeFile(t, fmt.Sprintf("d%d.conf", i+1), fmt.Sprintf(`global_defs {
  router_id d%d
  vrrp_garp_master_delay 1
}
vrrp_sync_group NAT {
  group {
    VI_EXT
    VI_INT
  }
}
vrrp_instance VI_EXT {
  state BACKUP
  interface eth0
  virtual_router_id 71
  priority %d
  version 3
  advert_int 0.1
  virtual_ipaddress {
    %s dev eth0%s
  }
}
vrrp_instance VI_INT {
  state BACKUP
  interface eth1
  virtual_router_id 72
  priority %d
  version 3
  advert_int 0.1
  virtual_ipaddress {
    %s dev eth1%s
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo wlc
  lb_kind NAT
  protocol TCP
%s}
virtual_server %s 5353 {
  delay_loop 1
  lb_algo rr
  lb_kind NAT
  protocol UDP
%s}
dataplane {
  backend xdp
  interface eth0 eth1
}
`, i+1, prio, vipCIDR, p.vipOpts(), prio, gwCIDR, p.vipOpts(), vip, tcpReals.String(), vip, udpReals.String()))
	}

	d2front, d2back := f.dirs[1].Link("eth0").HardwareAddr.String(), f.dirs[1].Link("eth1").HardwareAddr.String()
	follow := []neighWatch{{cl, vip, d2front}, {rt, vip, d2front}}
	for _, r := range f.reals {
		follow = append(follow, neighWatch{r, gw, d2back})
	}
	m := &masterDies{
		f:       f,
		fam:     p,
		links:   []string{"eth0", "eth1"},
		vips:    []string{vip, gw},
		follow:  follow,
		clients: []*lab.NS{cl, rc},
		tcpAddr: net.JoinHostPort(vip, "80"),
		udpAddr: netip.AddrPortFrom(netip.MustParseAddr(vip), 5353),
	}
	if !p.v6 {
		// Over IPv4 the on-link client only downloads: d2 learns its
		// next hop by resolving the address a reply found none for
		// (nh_wanted), not from a flow's first packet (client_nh).
		m.tcpOnly = []*lab.NS{cl}
	}
	// What d2 knows about the on-link client when it takes over: a reply
	// of a flow d2 never saw goes to the next hop of the client's
	// address, which for an on-link client is d2's neighbour entry.
	m.onTakeover = func(t *testing.T) {
		t.Logf("d2 at the takeover: neighbour entry for cl %q, pass_no_nexthop %v",
			strings.TrimSpace(f.dirs[1].IP("neigh", "show", p.ip(0, 2))), xdpCount(t, f.dirs[1], "pass_no_nexthop"))
	}
	m.run(t)

	// The flows crossed d2 both ways in XDP, without flow-table entries.
	counts := map[string]float64{}
	for _, reason := range []string{"ring", "ct_prev", "nat_dnat", "nat_reply", "pass_no_nexthop"} {
		counts[reason] = xdpCount(t, f.dirs[1], reason)
	}
	t.Logf("d2 data plane after the failover: %v", counts)
	if counts["ring"]+counts["ct_prev"] <= 0 {
		t.Errorf("d2 chose no real without a flow entry: %v", counts)
	}
	for _, reason := range []string{"nat_dnat", "nat_reply"} {
		if counts[reason] == 0 {
			t.Errorf("d2 counted no %s packet: %v", reason, counts)
		}
	}
}
