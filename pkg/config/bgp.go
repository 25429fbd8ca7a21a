package config

import (
	"math"
	"net/netip"
	"strconv"
)

// BGP is halo's second extension block (keepalived rejects it as unknown):
// an embedded speaker that announces virtual-server addresses to routers.
// A config without it has BGP == nil and needs nothing.
type BGP struct {
	LocalAS uint32 `json:"local_as"`
	// RouterID is zero when not given: the speaker then uses the host's
	// first IPv4 address.
	RouterID netip.Addr `json:"router_id,omitzero"`
	// ListenPort is -1 (the default) to only connect out.
	ListenPort int            `json:"listen_port"`
	Neighbors  []*BGPNeighbor `json:"neighbors"`
	// Announce lists the prefixes to announce; empty means every
	// virtual_server address (as /32 or /128).
	Announce []netip.Prefix `json:"announce,omitempty"`
	Pos      Pos            `json:"pos"`
}

// BGPNeighbor is one `neighbor ADDR { }` of the bgp block.
type BGPNeighbor struct {
	Addr     netip.Addr `json:"address"`
	RemoteAS uint32     `json:"remote_as"`
	// HoldTime is 0 (no keepalives) or 3..65535 seconds; keepalive is a
	// third of it. Default 90, as RFC 4271 suggests and GoBGP uses.
	HoldTime     int        `json:"hold_time"`
	Password     Secret     `json:"password,omitempty"` // TCP MD5 (RFC 2385)
	NextHopSelf  bool       `json:"next_hop_self,omitempty"`
	LocalAddress netip.Addr `json:"local_address,omitzero"`
	Port         int        `json:"port"`                   // default 179
	MultihopTTL  int        `json:"multihop_ttl,omitempty"` // 0: directly connected
	Pos          Pos        `json:"pos"`
}

func (b *builder) bgp(n *node) {
	if b.cfg.BGP != nil {
		b.d.errorf(n.pos(), "bgp block given twice (the first is at %s)", b.cfg.BGP.Pos)
		return
	}
	if len(n.args) > 0 {
		b.d.errorf(n.args[0].Pos, "bgp takes no arguments")
	}
	g := &BGP{Pos: n.pos()}
	b.cfg.BGP = g
	b.walk(n.children, "bgp", map[string]handler{
		"local_as": func(n *node) { b.asn(n, &g.LocalAS) },
		"router_id": func(n *node) {
			if t, ok := b.arg(n, 0); ok {
				if a, ok := b.addr(t, "router_id"); ok {
					if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
						b.d.errorf(t.Pos, "bgp router_id %s must be a unicast IPv4 address", a)
						return
					}
					g.RouterID = a
				}
			}
		},
		"listen_port": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			v, err := strconv.Atoi(t.Text)
			if err != nil || v == 0 || v < -1 || v > 65535 {
				b.d.errorf(t.Pos, "bgp listen_port %q must be -1 (do not listen) or 1-65535", t.Text)
				return
			}
			g.ListenPort = v
			b.mark(&g.ListenPort)
		},
		"neighbor": func(n *node) { b.bgpNeighbor(n, g) },
		"announce": func(n *node) {
			for _, e := range b.lines(n) {
				p, err := parsePrefix(e.key.Text)
				if err != nil {
					b.d.errorf(e.pos(), "bgp announce: %q is not an address or prefix", e.key.Text)
					continue
				}
				if p != p.Masked() {
					b.d.errorf(e.pos(), "bgp announce: %s has host bits set (did you mean %s?)", p, p.Masked())
					continue
				}
				for _, a := range e.args {
					b.d.errorf(a.Pos, "bgp announce: one prefix per line (unexpected %q)", a.Text)
				}
				g.Announce = append(g.Announce, p)
			}
		},
	})
}

// asn reads an AS number (1-4294967295; 4-byte ASNs as plain numbers).
func (b *builder) asn(n *node, dst *uint32) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	v, err := strconv.ParseUint(t.Text, 10, 32)
	if err != nil || v == 0 {
		b.d.errorf(t.Pos, "%s %q is not an AS number (1-%d)", n.key.Text, t.Text, uint32(math.MaxUint32))
		return
	}
	*dst = uint32(v)
	b.mark(dst)
}

func (b *builder) bgpNeighbor(n *node, g *BGP) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	a, ok := b.addr(t, "bgp neighbor")
	if !ok {
		return
	}
	if a.IsUnspecified() || a.IsMulticast() {
		b.d.errorf(t.Pos, "bgp neighbor %s is not a unicast address", a)
		return
	}
	nb := &BGPNeighbor{Addr: a, Pos: n.pos()}
	if !n.block {
		b.d.errorf(n.pos(), "bgp neighbor %s: expected a { } block with at least remote_as", a)
		return
	}
	b.walk(n.children, "bgp neighbor "+a.String(), map[string]handler{
		"remote_as": func(n *node) { b.asn(n, &nb.RemoteAS) },
		"hold_time": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			v, err := strconv.Atoi(t.Text)
			// RFC 4271 4.2: zero or at least three seconds.
			if err != nil || v < 0 || v > 65535 || v == 1 || v == 2 {
				b.d.errorf(t.Pos, "hold_time %q must be 0 or 3-65535 seconds", t.Text)
				return
			}
			nb.HoldTime = v
			b.mark(&nb.HoldTime)
		},
		"password": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			// Linux TCP MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
			if len(t.Text) > 80 {
				b.d.errorf(t.Pos, "password is longer than 80 characters (the TCP MD5 key limit)")
				return
			}
			nb.Password = Secret(t.Text)
		},
		"next_hop_self": b.setFlag(&nb.NextHopSelf),
		"local_address": b.addrArg(n, &nb.LocalAddress),
		"port": func(n *node) {
			if t, ok := b.arg(n, 0); ok {
				if p, ok := b.port(t, "port"); ok && p != 0 {
					nb.Port = p
					b.mark(&nb.Port)
				} else if ok {
					b.d.errorf(t.Pos, "port: 0 is not a port")
				}
			}
		},
		"multihop": func(n *node) { b.intRange(n, 1, 255, &nb.MultihopTTL) },
	})
	if !b.given(&nb.RemoteAS) {
		b.d.errorf(n.pos(), "bgp neighbor %s has no remote_as", a)
	}
	if nb.LocalAddress.IsValid() && nb.LocalAddress.Is4() != a.Is4() {
		b.d.errorf(n.pos(), "bgp neighbor %s: local_address %s is of another address family", a, nb.LocalAddress)
	}
	for _, o := range g.Neighbors {
		if o.Addr == a {
			b.d.errorf(t.Pos, "bgp neighbor %s is defined twice (first at %s)", a, o.Pos)
			return
		}
	}
	g.Neighbors = append(g.Neighbors, nb)
}
