// Package e2e holds halo's end-to-end tests: real namespaces, real links,
// real daemons. They need root and skip without it; CI runs them.
package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

// The protocount XDP program attached natively to a veth inside a namespace
// counts exactly the traffic that a peer on the same bridge sends.
func TestXDPCountsRealTraffic(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	a, b := l.NS("a"), l.NS("b")
	sw.Plug(a, "eth0")
	sw.Plug(b, "eth0")
	a.Addr("eth0", "10.79.0.1/24")
	b.Addr("eth0", "10.79.0.2/24")

	p, err := sink.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var xl link.Link
	if err := b.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		xl, err = p.Attach(ifi.Index)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer xl.Close()
	if info, err := xl.Info(); err == nil {
		t.Logf("attached: link type %v", info.Type)
	}
	if out := b.IP("link", "show", "eth0"); !strings.Contains(out, "xdp") {
		t.Fatalf("no XDP program on eth0:\n%s", out)
	}

	const datagrams = 50
	var conn net.PacketConn
	if err := b.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", "10.79.0.2:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := a.Do(func() error {
		c, err := net.Dial("udp4", "10.79.0.2:9999")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < datagrams; i++ {
			if _, err := fmt.Fprintf(c, "datagram %d", i); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out := a.MustExec("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.79.0.2"); !strings.Contains(out, "3 received") {
		t.Fatalf("ping: %s", out)
	}

	c, err := p.Read()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counters: %+v", c)
	if got := c[sink.IPv4UDP].Packets; got != datagrams {
		t.Errorf("IPv4 UDP packets = %d, want %d", got, datagrams)
	}
	if got := c[sink.IPv4ICMP].Packets; got != 3 {
		t.Errorf("IPv4 ICMP packets = %d, want 3 echo requests", got)
	}
	if c[sink.ARP].Packets == 0 {
		t.Error("no ARP counted")
	}
	if got, min := c[sink.IPv4UDP].Bytes, uint64(datagrams*(14+20+8+len("datagram 0"))); got < min {
		t.Errorf("IPv4 UDP bytes = %d, want at least %d", got, min)
	}
}
