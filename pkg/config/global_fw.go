package config

import (
	"math"
	"strconv"
)

// Firewall is global_defs' nftables settings: where halod puts the drop
// rules of no_accept (docs/keepalived.md#no-accept). Table stays "" until
// the config names one; an instance that needs the rules then uses
// keepalived's "keepalived", as keepalived does ("no firewall configured -
// using nftables").
type Firewall struct {
	Table    string `json:"nftables,omitempty"`
	Priority int    `json:"nftables_priority"`
	Counters bool   `json:"nftables_counters,omitempty"`
	IfIndex  bool   `json:"nftables_ifindex,omitempty"`
}

// keepalived's defaults and limits.
const (
	defNftTable      = "keepalived"
	defNftPriority   = -1
	nftTableMaxName  = 256 // NFT_TABLE_MAXNAMELEN, with the NUL
	strictV2AcceptRF = "(%s) warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting"
)

// firewallKeywords are the global_defs keywords of the no_accept firewall,
// with keepalived's messages for bad values (a warning, and the keyword is
// ignored).
func (b *builder) firewallKeywords(fw *Firewall) map[string]handler {
	iptables := func(n *node) {
		// halo, like a keepalived built without iptables, uses nftables.
		b.d.notef(n.pos(), "%s: halo enforces no_accept with nftables, not iptables (table %q); please replace 'vrrp_iptables' and 'vrrp_ipsets' with 'nftables'", n.key.Text, defNftTable)
		if fw.Table == "" {
			fw.Table = defNftTable
		}
	}
	return map[string]handler{
		"nftables": func(n *node) {
			if fw.Table != "" {
				b.d.warnf(n.pos(), "nftables already specified - ignoring")
				return
			}
			name := defNftTable
			if len(n.args) > 0 {
				name = n.args[0].Text
				if len(name) >= nftTableMaxName {
					b.d.warnf(n.args[0].Pos, "nftables table name too long - ignoring")
					return
				}
			}
			fw.Table = name
		},
		"nftables_priority": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			v, err := strconv.ParseInt(t.Text, 10, 64)
			if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
				b.d.warnf(t.Pos, "invalid nftables chain priority '%s'", t.Text)
				return
			}
			fw.Priority = int(v)
			b.mark(&fw.Priority)
		},
		"nftables_counters": b.setFlag(&fw.Counters),
		"nftables_ifindex":  b.setFlag(&fw.IfIndex),
		"vrrp_iptables":     iptables,
		"vrrp_ipsets":       iptables,
	}
}

// firewallDefaults fills the chain priority, and turns off `accept` where
// keepalived does: in strict mode a VRRPv2 instance that does not own its
// addresses may not accept (RFC 3768), whatever the config says.
func firewallDefaults(c *Config, d *Diags) {
	if !c.given.has(&c.Global.Firewall.Priority) {
		c.Global.Firewall.Priority = defNftPriority
	}
	for _, in := range c.Instances {
		if in.StrictMode && in.Accept && in.Priority != 255 && in.Version == 2 && c.given.has(&in.Accept) {
			d.warnf(in.Pos, strictV2AcceptRF, in.Name)
			in.Accept = false
		}
	}
}
