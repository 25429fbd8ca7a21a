package xdp

import (
	"fmt"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// tunnelOf is a TUN real's encapsulation: its own when its type is set,
// otherwise the service's (the IPVS backend resolves it the same way).
func tunnelOf(s dataplane.Service, r dataplane.Real) dataplane.Tunnel {
	if r.Tunnel.Type != "" {
		return r.Tunnel
	}
	return s.Tunnel
}

// tunSupported reports why the program cannot encapsulate to the TUN real
// r of s, or nil. What it refuses is named, so that an option is never
// accepted and then silently sent as plain ipip.
func tunSupported(s dataplane.Service, r dataplane.Real) error {
	if r.Addr.Is4() != s.Key.Addr.Is4() {
		return fmt.Errorf("real %s: TUN between IPv4 and IPv6 is not supported (ipip and GUE carry IPv4 in IPv4, IPv6 in IPv6)", r.Key())
	}
	t := tunnelOf(s, r)
	switch t.Type {
	case "", "ipip":
		if t.Port != 0 || (t.Checksum != "" && t.Checksum != "nocsum") {
			return fmt.Errorf("real %s: ipip tunnels take no port or checksum option (got port %d %q)", r.Key(), t.Port, t.Checksum)
		}
	case "gue":
		if t.Port == 0 {
			return fmt.Errorf("real %s: a gue tunnel needs a port", r.Key())
		}
		switch t.Checksum {
		case "", "nocsum", "csum":
		case "remcsum":
			return fmt.Errorf("real %s: tunnel option remcsum is not supported by the XDP data plane (gue with nocsum or csum; remcsum needs `backend ipvs`)", r.Key())
		default:
			return fmt.Errorf("real %s: tunnel checksum option %q is not nocsum, csum or remcsum", r.Key(), t.Checksum)
		}
	default:
		return fmt.Errorf("real %s: tunnel type %s is not supported by the XDP data plane (ipip, gue; %s needs `backend ipvs`)", r.Key(), t.Type, t.Type)
	}
	return nil
}

// gueEntry turns the map entry e of a TUN real (its Tunnel resolved by
// tunnelOf) into a GUE one: the program then sends outer IP + UDP to the
// tunnel's port + GUE (bpf/lb_tun.h), with the UDP checksum over IPv4
// when the tunnel asks for csum. Other reals are left as they are.
func gueEntry(e *lbReal, r dataplane.Real) {
	if r.Method != dataplane.TUN || r.Tunnel.Type != "gue" {
		return
	}
	e.Method = uint8(lbLbMethodMETHOD_GUE)
	e.Port = htons(r.Tunnel.Port)
	if r.Tunnel.Checksum == "csum" {
		e.Flags |= uint8(lbRealFlagsREAL_TUN_CSUM)
	}
}
