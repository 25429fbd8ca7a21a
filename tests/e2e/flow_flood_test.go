package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/dataplane/xdp"
)

// A SYN flood far beyond the flow table's size cannot flush the entries of
// idle keep-alive connections: after the real set changed (so the table
// would now send many of those flows elsewhere), spoofed SYNs from random
// sources hit the VIP; afterwards every connection is still answered by its
// own real, and new connections work. The data plane runs in the test
// process, attached in the director's namespace, with a 4096-entry flow
// table and a budget of 200 new entries per second and CPU. Without the
// budget (SYNFloodThreshold -1) the same run loses most connections (19 of
// 24 when measured): the flood's flows, looked up again by their ACKs,
// push the idle entries out of the LRU.
func TestFlowTableSurvivesSYNFlood(t *testing.T) {
	lab.RequireRoot(t)
	const subnet = 124
	l := lab.New(t)
	sw := l.Switch("sw")
	vip := fmt.Sprintf("10.%d.0.100", subnet)
	dir, cl := l.NS("dir"), l.NS("cl")
	plug := func(n *lab.NS, host int) {
		port := sw.Plug(n, "eth0")
		if n == dir {
			attachPass(t, sw.NS, port) // docs/lab.md#veth-peer-needs-xdp
		}
		n.Addr("eth0", fmt.Sprintf("10.%d.0.%d/24", subnet, host))
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	plug(dir, 1)
	plug(cl, 2)
	dir.Addr("eth0", vip+"/32")
	var reals []dataplane.Real
	for i := 0; i < 4; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		plug(ns, 11+i)
		ns.IP("addr", "add", vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			ns.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			ns.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		serveFlowReal(t, ns, fmt.Sprintf("real%d", i+1))
		reals = append(reals, dataplane.Real{Addr: netip.MustParseAddr(fmt.Sprintf("10.%d.0.%d", subnet, 11+i)), Weight: 1,
			MAC: ns.Link("eth0").HardwareAddr})
	}
	dirMAC := dir.Link("eth0").HardwareAddr
	service := func(rs ...dataplane.Real) []dataplane.Service {
		return []dataplane.Service{{Key: dataplane.ServiceKey{Addr: netip.MustParseAddr(vip), Port: 80, Proto: dataplane.TCP},
			Scheduler: "wlc", Method: dataplane.DR, Reals: rs}}
	}

	var be *xdp.Backend
	if err := dir.Do(func() (err error) {
		be, err = xdp.New(xdp.Options{Interfaces: []string{"eth0"}, Mode: "native", FlowTableSize: 4096, SYNFloodThreshold: 200})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if err := be.Apply(context.Background(), service(reals[:3]...)); err != nil {
		t.Fatal(err)
	}

	// Idle keep-alive connections, each answered by its real.
	const conns = 24
	type held struct {
		c    net.Conn
		br   *bufio.Reader
		real string
	}
	var hs []held
	for i := 0; i < conns; i++ {
		var c net.Conn
		if err := cl.Do(func() (err error) { c, err = net.DialTimeout("tcp", vip+":80", 3*time.Second); return err }); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer c.Close()
		h := held{c: c, br: bufio.NewReader(c)}
		h.real = keepAliveGet(t, h.c, h.br)
		if h.real == "" {
			t.Fatalf("connection %d got no answer", i)
		}
		hs = append(hs, h)
	}
	// A fourth real with a large weight: the table now sends most of these
	// flows elsewhere; only their flow-table entries keep them in place.
	big := reals[3]
	big.Weight = 8
	if err := be.Apply(context.Background(), service(reals[0], reals[1], reals[2], big)); err != nil {
		t.Fatal(err)
	}
	before := be.ReasonNames()

	// The flood: spoofed SYNs from random sources, bounded in count and time.
	const synCount, synTime = 60000, 10 * time.Second
	sent, took := flood(t, cl, dirMAC, netip.MustParseAddr(vip), synCount, synTime)
	after := be.ReasonNames()
	t.Logf("flood: %d spoofed flows (SYN+ACK) in %v; flow table %d of 4096 entries; new entries %d, forwarded unrecorded %d",
		sent, took.Round(time.Millisecond), be.FlowEntries(), after["ct_new"]-before["ct_new"], after["ct_flood"]-before["ct_flood"])
	if sent < 4*4096 {
		t.Fatalf("only %d spoofed flows sent: not a flood beyond the table", sent)
	}
	if after["ct_flood"] == before["ct_flood"] {
		t.Fatal("the flood never hit the new-entry budget")
	}

	moved := 0
	for i, h := range hs {
		got := keepAliveGet(t, h.c, h.br)
		if got != h.real {
			t.Errorf("connection %d: answered by %q, was %s", i, got, h.real)
			moved++
		}
	}
	if moved > 0 {
		t.Fatalf("%d of %d idle connections lost their real to the flood", moved, conns)
	}
	n := map[string]int{}
	for i := 0; i < 20; i++ {
		name, err := cl.HTTPGet(vip+":80", "/", 3*time.Second)
		if err != nil {
			t.Fatalf("new connection after the flood: %v", err)
		}
		n[name]++
	}
	t.Logf("new connections after the flood: %v", n)
}

// keepAliveGet sends GET / on a kept-alive connection and returns the body.
func keepAliveGet(t *testing.T, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// flood sends up to count spoofed flows (SYN, then ACK) from random 198.18.0.0/15 sources to
// vip:80 through an AF_PACKET socket on the client's eth0, for at most d.
func flood(t *testing.T, ns *lab.NS, dstMAC net.HardwareAddr, vip netip.Addr, count int, d time.Duration) (int, time.Duration) {
	t.Helper()
	sent := 0
	start := time.Now()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], dstMAC)
		f := &packet.Frame{Dst: dstMAC, Src: ifi.HardwareAddr, IPv4: &packet.IPv4{Dst: vip},
			TCP: &packet.TCP{DstPort: 80, Flags: packet.TCPSyn}}
		for sent < count && time.Since(start) < d {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], 0xc6120000|uint32(sent*2654435761)&0x1ffff)
			f.IPv4.Src = netip.AddrFrom4(a)
			f.TCP.SrcPort = uint16(1024 + sent%60000)
			// A SYN, then an ACK of the same flow: a flood whose flows are
			// looked up again looks to the LRU like live traffic, so only
			// the budget keeps it from pushing idle flows out.
			for _, flags := range []uint8{packet.TCPSyn, packet.TCPAck} {
				f.TCP.Flags = flags
				for {
					err := unix.Sendto(fd, f.Bytes(), 0, sa)
					if err == unix.ENOBUFS {
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						return err
					}
					break
				}
			}
			sent++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	return sent, time.Since(start)
}
