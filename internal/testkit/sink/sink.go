// Package sink loads halo's smallest XDP program: it counts packets and
// bytes per protocol class in a per-CPU array and passes every packet. Labs
// attach it as a traffic sink (a veth whose peer has no XDP program drops
// redirected frames) and tests use it to count what really crossed a link.
package sink

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// Class is a protocol class, one slot of the counter array. The values come
// from the C enum through bpf2go, so Go and C cannot drift apart.
type Class = protocountProtoClass

// Protocol classes.
const (
	Other     = protocountProtoClassCLASS_OTHER
	ARP       = protocountProtoClassCLASS_ARP
	IPv4TCP   = protocountProtoClassCLASS_IPV4TCP
	IPv4UDP   = protocountProtoClassCLASS_IPV4UDP
	IPv4ICMP  = protocountProtoClassCLASS_IPV4ICMP
	IPv4Other = protocountProtoClassCLASS_IPV4OTHER
	IPv6TCP   = protocountProtoClassCLASS_IPV6TCP
	IPv6UDP   = protocountProtoClassCLASS_IPV6UDP
	IPv6ICMP  = protocountProtoClassCLASS_IPV6ICMP
	IPv6Other = protocountProtoClassCLASS_IPV6OTHER
	Truncated = protocountProtoClassCLASS_TRUNCATED
	numClass  = protocountProtoClassCLASS_MAX
)

// Counter is the sum over CPUs of one class.
type Counter struct {
	Packets, Bytes uint64
}

// Counter is one class's packets and bytes.
type Counters map[Class]Counter

// Program is a loaded protocount program with its counter map.
type Program struct {
	objs protocountObjects
}

// Load loads the program into the kernel without attaching it.
func Load() (*Program, error) {
	p := &Program{}
	if err := loadProtocountObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("load protocount: %w", err)
	}
	return p, nil
}

// Prog returns the XDP program, for prog.Run or attaching.
func (p *Program) Prog() *ebpf.Program { return p.objs.XdpProtocount }

// Attach attaches the program to the interface with the given index. Native
// mode is tried first; generic is used when the driver lacks XDP support.
func (p *Program) Attach(ifindex int) (link.Link, error) {
	l, err := link.AttachXDP(link.XDPOptions{Program: p.objs.XdpProtocount, Interface: ifindex, Flags: link.XDPDriverMode})
	if err == nil {
		return l, nil
	}
	l, gerr := link.AttachXDP(link.XDPOptions{Program: p.objs.XdpProtocount, Interface: ifindex, Flags: link.XDPGenericMode})
	if gerr != nil {
		return nil, errors.Join(err, gerr)
	}
	return l, nil
}

// Read sums the per-CPU counters of every class.
func (p *Program) Read() (Counters, error) {
	out := make(Counters, numClass)
	var per []protocountCounter
	for c := Class(0); c < numClass; c++ {
		if err := p.objs.ProtoCounters.Lookup(uint32(c), &per); err != nil {
			return nil, fmt.Errorf("read class %d: %w", c, err)
		}
		var sum Counter
		for _, v := range per {
			sum.Packets += v.Packets
			sum.Bytes += v.Bytes
		}
		out[c] = sum
	}
	return out, nil
}

// Close releases the program and its map.
func (p *Program) Close() error { return p.objs.Close() }

// AttachIn loads the sink and attaches it to ifname inside ns, for as long
// as the test (or demo) runs. A veth whose peer sends frames back with
// XDP_TX or receives redirected ones needs an XDP program on that peer:
// without one, GRO holds the frames for up to a second
// (docs/lab.md#veth-peer-needs-xdp). The returned program reads the
// counters of what crossed the link.
func AttachIn(t lab.T, ns *lab.NS, ifname string) *Program {
	t.Helper()
	p, err := Load()
	if err != nil {
		t.Fatalf("sink: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err := p.Attach(ifi.Index)
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	}); err != nil {
		t.Fatalf("sink: attach on %s in %s: %v", ifname, ns.Tag, err)
	}
	return p
}
