package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/halo-lb/halo/pkg/config"
)

// Config is the speaker's configuration: the bgp block of the config file
// (FromConfig) plus what the daemon knows at start.
type Config struct {
	LocalAS uint32
	// RouterID defaults to the host's first IPv4 address (FirstIPv4).
	RouterID netip.Addr
	// ListenPort is -1 to only connect out (the default), else the port
	// to accept sessions on.
	ListenPort int
	Neighbors  []Neighbor
	Announce   []netip.Prefix
	// Restarting sets the Restart State bit of the graceful-restart
	// capability (RFC 4724): the daemon sets it when it adopted a data
	// plane that kept forwarding while it was down, so routers keep the
	// routes they hold from the previous run until this one has sent its own.
	Restarting bool
}

// Neighbor is one BGP peer.
type Neighbor struct {
	Addr     netip.Addr
	RemoteAS uint32
	// HoldTime in seconds; 0 means GoBGP's default, 90. Keepalives go out
	// every third of it, as RFC 4271 suggests.
	HoldTime int
	// Password is the TCP MD5 key (RFC 2385). It is never logged, shown in
	// status or exported as a metric.
	Password     string
	NextHopSelf  bool
	LocalAddress netip.Addr
	Port         int // 0: 179
	MultihopTTL  int // 0: directly connected
}

// FromConfig converts the config model's bgp block (nil: no BGP).
func FromConfig(b *config.BGP) *Config {
	if b == nil {
		return nil
	}
	c := &Config{LocalAS: b.LocalAS, RouterID: b.RouterID, ListenPort: b.ListenPort, Announce: b.Announce}
	for _, n := range b.Neighbors {
		c.Neighbors = append(c.Neighbors, Neighbor{Addr: n.Addr, RemoteAS: n.RemoteAS, HoldTime: n.HoldTime,
			Password: string(n.Password), NextHopSelf: n.NextHopSelf, LocalAddress: n.LocalAddress,
			Port: n.Port, MultihopTTL: n.MultihopTTL})
	}
	return c
}

// validate checks what the config package also checks, so a Config built by
// hand (tests, other callers) fails with a clear error instead of a GoBGP
// one.
func (c *Config) validate() error {
	var errs []error
	if c.LocalAS == 0 {
		errs = append(errs, errors.New("bgp: local_as is missing"))
	}
	if c.RouterID.IsValid() && !c.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("bgp: router_id %s is not an IPv4 address", c.RouterID))
	}
	if c.ListenPort == 0 || c.ListenPort < -1 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("bgp: listen_port %d must be -1 or 1-65535", c.ListenPort))
	}
	if len(c.Neighbors) == 0 {
		errs = append(errs, errors.New("bgp: no neighbor"))
	}
	seen := map[netip.Addr]bool{}
	for _, n := range c.Neighbors {
		switch {
		case !n.Addr.IsValid():
			errs = append(errs, errors.New("bgp: neighbor without an address"))
		case seen[n.Addr]:
			errs = append(errs, fmt.Errorf("bgp: neighbor %s given twice", n.Addr))
		case n.RemoteAS == 0:
			errs = append(errs, fmt.Errorf("bgp: neighbor %s has no remote_as", n.Addr))
		case n.HoldTime < 0 || n.HoldTime == 1 || n.HoldTime == 2 || n.HoldTime > 65535:
			errs = append(errs, fmt.Errorf("bgp: neighbor %s: hold_time %d must be 0 or 3-65535", n.Addr, n.HoldTime))
		case len(n.Password) > 80:
			errs = append(errs, fmt.Errorf("bgp: neighbor %s: password longer than 80 bytes", n.Addr))
		}
		seen[n.Addr] = true
	}
	return errors.Join(errs...)
}

// FirstIPv4 returns the first IPv4 address of the host's interfaces that is
// neither loopback nor link-local: the default router_id.
func FirstIPv4() (netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, errors.New("bgp: no IPv4 address on this host for router_id; set router_id")
}
