package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
)

const guePort = 6080

// TestXDPTUNGUE: halod serving `lvs_method TUN type gue port 6080` with
// XDP; each real decapsulates outer IPv4 + UDP + GUE with bpf/tundecap.c
// (the `ip fou add port 6080 gue` of a real host; this kernel has no fou
// module) and answers HTTP from the VIP. Real HTTP through the tunnel,
// spread over the reals; on the wire (tcpdump on a real) UDP to port 6080
// with checksum 0 (nocsum, as IPVS sends it); each real's decapsulation
// counter shows GUE, never ipip.
func TestXDPTUNGUE(t *testing.T) { gueLab(t, false, "") }

// TestXDPTUNGUECsum: the same with `csum`: every captured outer UDP
// checksum must verify (tcpdump recomputes it over the whole datagram).
func TestXDPTUNGUECsum(t *testing.T) { gueLab(t, false, "csum") }

// TestXDPTUNGUEIPv6: GUE over IPv6, where the outer UDP checksum is always
// sent and must verify.
func TestXDPTUNGUEIPv6(t *testing.T) { gueLab(t, true, "") }

func gueLab(t *testing.T, v6 bool, csum string) {
	lab.RequireRoot(t)
	testkit.Require(t, "tcpdump") // sees the tunnel on the wire
	l := lab.New(t)
	sw := l.Switch("sw")
	dir, cl := l.NS("dir"), l.NS("cl")
	// XDP_TX'd frames need an XDP program on the peer (docs/lab.md#veth-peer-needs-xdp).
	attachPass(t, sw.NS, sw.Plug(dir, "eth0"))
	sw.Plug(cl, "eth0")
	vip, plen, addr := "10.97.0.100", "/24", func(i int) string { return fmt.Sprintf("10.97.0.%d", i) }
	if v6 {
		vip, plen, addr = "fd97::100", "/64", func(i int) string { return fmt.Sprintf("fd97::%d", i) }
	}
	dir.Addr("eth0", addr(1)+plen)
	cl.Addr("eth0", addr(2)+plen)
	for _, n := range []*lab.NS{dir, cl} {
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	names := []string{"real1", "real2", "real3"}
	stats := make([]*ebpf.Map, len(names))
	var dumps []*lab.Proc
	var rs strings.Builder
	for i, name := range names {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		sw.Plug(ns, "eth0")
		ip := addr(11 + i)
		ns.Addr("eth0", ip+plen)
		ns.TxOff("eth0")
		stats[i] = tunReal(t, ns, vip, guePort, name)
		// The outer packets as they reach the real, checksums verified by
		// tcpdump (-vv); -c bounds the capture.
		dumps = append(dumps, ns.Start("tcpdump", "-l", "-n", "-vv", "--immediate-mode", "-c", "40", "-i", "eth0", fmt.Sprintf("udp dst port %d", guePort)))
		fmt.Fprintf(&rs, "  real_server %s 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", ip)
	}
	conf := writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 97
  priority 255
  virtual_ipaddress {
    %s%s
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lvs_method TUN type gue port %d %s
  protocol TCP
%s}
dataplane {
  backend xdp
  interface eth0
}
`, vip, plen, vip, guePort, csum, rs.String()))
	for _, d := range dumps {
		if waitFor(10*time.Second, func() bool { return strings.Contains(d.Output(), "listening on") }) < 0 {
			t.Fatalf("tcpdump did not start: %s", d.Output())
		}
	}
	p := startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(l.BPFFS(), "halo"),
		"--metrics-addr", "127.0.0.1:9650")
	hostport := net.JoinHostPort(vip, "80")
	get := func() (string, error) { return cl.HTTPGet(hostport, "/", 3*time.Second) }
	if waitFor(20*time.Second, func() bool { _, err := get(); return err == nil }) < 0 {
		_, err := get()
		t.Fatalf("the GUE VIP never served: %v\n%s", err, p.Output())
	}
	n := map[string]int{}
	const conns = 60
	for i := 0; i < conns; i++ {
		name, err := get()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		n[strings.TrimSpace(name)]++
	}
	t.Logf("%d connections through GUE: %v", conns, n)
	for i, name := range names {
		if n[name] == 0 {
			t.Errorf("%s got no connection: %v", name, n)
		}
		var ipip, gue uint64
		if err := stats[i].Lookup(uint32(tunDecapKindDECAP_IPIP), &ipip); err != nil {
			t.Fatal(err)
		}
		if err := stats[i].Lookup(uint32(tunDecapKindDECAP_GUE), &gue); err != nil {
			t.Fatal(err)
		}
		if gue < uint64(n[name])*3 || ipip != 0 {
			t.Errorf("%s decapsulated %d GUE and %d ipip packets for %d connections", name, gue, ipip, n[name])
		}
	}
	// On the wire: every captured packet is UDP to the GUE port with the
	// checksum the configuration asks for.
	wantSum := "[udp sum ok]"
	if !v6 && csum == "" {
		wantSum = "[no cksum]"
	}
	for i, d := range dumps {
		d.Wait(2 * time.Second) // -c 40 ends it once the capture is complete
		d.Stop()
		var seen int
		for _, line := range strings.Split(d.Output(), "\n") {
			if !strings.Contains(line, fmt.Sprintf(".%d: ", guePort)) {
				continue
			}
			seen++
			if !strings.Contains(line, wantSum) {
				t.Errorf("%s: captured %q, want %s", names[i], line, wantSum)
			}
		}
		if seen == 0 && n[names[i]] > 0 {
			t.Errorf("%s: no GUE packet captured:\n%s", names[i], d.Output())
		}
		t.Logf("%s: %d GUE packets captured, all %s", names[i], seen, wantSum)
	}
	m := (&drLab{dir: dir}).scrape(t)
	if !strings.Contains(m, `halo_xdp_packets_total{reason="tun_encap"}`) {
		t.Fatalf("no tun_encap counter\n%s", grepLines(m, "halo_xdp"))
	}
}
