package config

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
)

// validate runs the checks that need the whole config: cross references,
// families, ranges that depend on other settings, duplicates.
func validate(c *Config, d *Diags, opts Options) {
	scripts := map[string]*VRRPScript{}
	for _, s := range c.Scripts {
		if _, dup := scripts[s.Name]; dup {
			d.errorf(s.Pos, "vrrp_script %s is defined twice", s.Name)
		}
		scripts[s.Name] = s
	}
	files := map[string]bool{}
	for _, f := range c.TrackFiles {
		if files[f.Name] {
			d.errorf(f.Pos, "track_file %s is defined twice", f.Name)
		}
		files[f.Name] = true
	}
	ifaceCheck := func(name string, pos Pos) {
		if opts.InterfaceExists != nil && name != "" && !opts.InterfaceExists(name) {
			d.errorf(pos, "non-existent interface %q specified in configuration", name)
		}
	}

	instances := map[string]*VRRPInstance{}
	type vridKey struct {
		iface  string
		family string
		vrid   int
		group  string
	}
	vrids := map[vridKey]*VRRPInstance{}
	for _, in := range c.Instances {
		if _, dup := instances[in.Name]; dup {
			d.errorf(in.Pos, "vrrp_instance %s is defined twice", in.Name)
		}
		instances[in.Name] = in
		validateInstance(in, c.given, d)
		ifaceCheck(in.Interface, in.Pos)
		for _, t := range in.TrackInterfaces {
			ifaceCheck(t.Name, t.Pos)
		}
		for _, v := range in.VIPs {
			ifaceCheck(v.Dev, v.Pos)
		}
		for _, r := range in.VirtualRoutes {
			ifaceCheck(r.Dev, r.Pos)
		}
		for _, t := range in.TrackScripts {
			if _, ok := scripts[t.Name]; !ok {
				d.errorf(t.Pos, "(%s) track_script %s: no vrrp_script of that name", in.Name, t.Name)
			}
		}
		for _, t := range in.TrackFiles {
			if !files[t.Name] {
				d.errorf(t.Pos, "(%s) track_file %s: no track_file of that name", in.Name, t.Name)
			}
		}
		if in.VRID == 0 || in.Interface == "" {
			continue
		}
		// The same VRID may appear twice on one interface only with a
		// different multicast group or disjoint unicast peers.
		group := in.McastDstIP.String()
		if len(in.UnicastPeers) > 0 {
			var peers []string
			for _, p := range in.UnicastPeers {
				peers = append(peers, p.Addr.String())
			}
			group = "unicast:" + strings.Join(peers, ",")
		}
		k := vridKey{in.Interface, in.Family, in.VRID, group}
		if other, dup := vrids[k]; dup {
			d.errorf(in.Pos, "(%s) virtual_router_id %d is already used by %s on %s (%s)", in.Name, in.VRID, other.Name, in.Interface, in.Family)
		}
		vrids[k] = in
	}

	member := map[string]string{}
	for _, sg := range c.SyncGroups {
		if len(sg.Members) == 1 {
			d.warnf(sg.Pos, "Sync group %s has only 1 virtual router(s) - this probably isn't what you want", sg.Name)
		}
		for _, m := range sg.Members {
			if _, ok := instances[m]; !ok {
				d.errorf(sg.Pos, "sync group %s: unknown vrrp_instance %s", sg.Name, m)
				continue
			}
			if other, ok := member[m]; ok {
				d.errorf(sg.Pos, "sync group %s: %s is already in sync group %s", sg.Name, m, other)
			}
			member[m] = sg.Name
		}
		for _, t := range sg.TrackScripts {
			if _, ok := scripts[t.Name]; !ok {
				d.errorf(t.Pos, "sync group %s track_script %s: no vrrp_script of that name", sg.Name, t.Name)
			}
		}
	}

	groups := map[string]bool{}
	for _, g := range c.VSGroups {
		if groups[g.Name] {
			d.errorf(g.Pos, "virtual_server_group %s is defined twice", g.Name)
		}
		groups[g.Name] = true
	}
	type vsKey struct {
		addr   netip.Addr
		port   int
		proto  string
		fwmark uint32
		group  string
	}
	seenVS := map[vsKey]bool{}
	kept := c.VirtualServers[:0]
	for _, vs := range c.VirtualServers {
		if vs.Group != "" && !groups[vs.Group] {
			d.errorf(vs.Pos, "virtual_server group %s: no virtual_server_group of that name", vs.Group)
		}
		k := vsKey{vs.Addr, vs.Port, vs.Protocol, vs.FWMark, vs.Group}
		if vs.FWMark != 0 {
			k.proto = ""
		}
		if seenVS[k] {
			d.errorf(vs.Pos, "virtual_server %s is defined twice", vsName(vs))
		}
		seenVS[k] = true
		validateVS(vs, d)
		if len(vs.Reals) == 0 {
			// keepalived drops such a service (a sorry_server alone does
			// not make one) and -t exits 5.
			d.warnf(vs.Pos, "Virtual server %s has no real servers - ignoring", vsLabel(vs, vs.Protocol))
			continue
		}
		kept = append(kept, vs)
	}
	c.VirtualServers = kept

	dp := c.Dataplane
	for _, i := range dp.Interfaces {
		ifaceCheck(i, dp.Pos)
	}
	if dp.Backend == "xdp" {
		svcs, reals := c.tableUse()
		if svcs > dp.MaxServices {
			d.errorf(dp.Pos, "the config has %d services (a group counts each address), more than max_services %d", svcs, dp.MaxServices)
		}
		if reals > dp.MaxReals {
			d.errorf(dp.Pos, "the config has %d real servers over all services, more than max_reals %d", reals, dp.MaxReals)
		}
		// What the XDP program cannot match is refused here rather than
		// accepted and then never matched.
		for _, vs := range c.VirtualServers {
			switch {
			case vs.FWMark != 0:
				d.errorf(vs.Pos, "virtual_server fwmark %d: firewall-mark services need `backend ipvs` (the XDP data plane matches address, port and protocol)", vs.FWMark)
			case vs.Group == "" && vs.Port == 0:
				d.errorf(vs.Pos, "virtual_server %s port 0: all-ports services need `backend ipvs` (the XDP data plane matches one port)", vs.Addr)
			case vs.Protocol != "TCP" && vs.Protocol != "UDP":
				d.errorf(vs.Pos, "virtual_server %s: protocol %s needs `backend ipvs` (the XDP data plane forwards TCP and UDP)", vsLabel(vs, vs.Protocol), vs.Protocol)
			}
			for _, rs := range vs.Reals {
				if rs.UThreshold != 0 || rs.LThreshold != 0 {
					d.errorf(rs.Pos, "real_server %s: uthreshold/lthreshold need `backend ipvs` (the XDP data plane keeps no per-real connection counts to limit)", rs.Addr)
				}
				xdpTunnel(vs, rs, d)
			}
			if vs.SorryServer != nil {
				xdpTunnel(vs, vs.SorryServer, d)
			}
		}
	}
}

// tableUse counts the services and the (service, real) pairs the data
// plane will hold: every address of a virtual_server_group is a service,
// and a sorry server takes a real slot.
func (c *Config) tableUse() (services, reals int) {
	groups := map[string]*VSGroup{}
	for _, g := range c.VSGroups {
		groups[g.Name] = g
	}
	for _, vs := range c.VirtualServers {
		n := 1
		if g := groups[vs.Group]; vs.Group != "" && g != nil {
			n = 0
			for _, e := range g.Entries {
				n += rangeLen(e)
			}
		}
		r := len(vs.Reals)
		if vs.SorryServer != nil {
			r++
		}
		services += n
		reals += n * r
		if services > 1<<24 || reals > 1<<24 {
			break // far beyond any limit already
		}
	}
	return services, reals
}

// rangeLen is the number of addresses in a group entry (1 for a fwmark),
// capped so a huge IPv6 range cannot overflow the count.
func rangeLen(e VSGroupEntry) int {
	if e.FWMark != 0 || !e.First.IsValid() {
		return 1
	}
	a, b := e.First.As16(), e.Last.As16()
	n := 0
	for i := 0; i < 16; i++ {
		n = n*256 + int(b[i]) - int(a[i]) // last - first, byte by byte
		if n > 1<<24 {
			return 1 << 24
		}
	}
	return n + 1
}

func vsName(vs *VirtualServer) string {
	switch {
	case vs.FWMark != 0:
		return fmt.Sprintf("fwmark %d", vs.FWMark)
	case vs.Group != "":
		return "group " + vs.Group
	}
	return fmt.Sprintf("%s %d", vs.Addr, vs.Port)
}

func validateInstance(in *VRRPInstance, set given, d *Diags) {
	if !set.has(&in.VRID) {
		d.errorf(in.Pos, "(%s) virtual_router_id is missing (1-255)", in.Name)
	}
	if in.Interface == "" {
		d.errorf(in.Pos, "(%s) no interface specified", in.Name)
	}
	if len(in.VIPs) == 0 {
		d.warnf(in.Pos, "(%s) no VIP specified", in.Name)
	}
	// One address family per virtual_ipaddress block: the first VIP sets it.
	if len(in.VIPs) > 0 {
		is6 := in.VIPs[0].Prefix.Addr().Is6()
		for _, v := range in.VIPs[1:] {
			if v.Prefix.Addr().Is6() != is6 {
				d.errorf(v.Pos, "(%s) %s is of another address family than the first VIP; put it in virtual_ipaddress_excluded",
					in.Name, v.Prefix.Addr())
			}
		}
	}
	if in.Family == "inet6" && in.Version == 2 {
		d.errorf(in.Pos, "(%s) VRRP version 2 does not support IPv6; use version 3", in.Name)
		in.Version = 3
	}
	adv := in.AdvertInt.D().Seconds()
	switch in.Version {
	case 2:
		if adv != math.Trunc(adv) {
			d.warnf(in.Pos, "(%s) VRRPv2 advert_int %g is not a whole number of seconds; rounding to %g", in.Name, adv, math.Max(1, math.Round(adv)))
			in.AdvertInt = secs(math.Max(1, math.Round(adv)))
		}
		if adv > 255 {
			d.errorf(in.Pos, "(%s) VRRPv2 advert_int %g out of range 1-255", in.Name, adv)
		}
	case 3:
		if adv > 40.95 {
			d.errorf(in.Pos, "(%s) VRRPv3 advert_int %g out of range 0.01-40.95", in.Name, adv)
		}
	}
	if in.AuthType != "" && in.Version == 3 {
		d.warnf(in.Pos, "(%s) authentication is not supported with VRRP version 3 - ignoring", in.Name)
		in.AuthType, in.AuthPass = "", ""
	}
	if in.AuthType == "PASS" && in.AuthPass == "" {
		d.errorf(in.Pos, "(%s) auth_type PASS without auth_pass", in.Name)
	}
	if in.AuthType == "AH" && in.State == "MASTER" {
		d.warnf(in.Pos, "(%s) initial state master is incompatible with AH authentication - clearing", in.Name)
		in.State = "BACKUP"
	}
	for _, p := range in.UnicastPeers {
		if in.UnicastSrcIP.IsValid() && p.Addr.Is4() != in.UnicastSrcIP.Is4() {
			d.errorf(in.Pos, "(%s) unicast_peer %s and unicast_src_ip %s are of different families", in.Name, p.Addr, in.UnicastSrcIP)
		}
		if len(in.VIPs) > 0 && p.Addr.Is4() != in.VIPs[0].Prefix.Addr().Is4() {
			d.errorf(in.Pos, "(%s) unicast_peer %s is of another family than the VIPs", in.Name, p.Addr)
		}
	}
	if in.NoPreempt && in.Priority == 255 {
		d.warnf(in.Pos, "(%s) nopreempt is incompatible with priority 255. resetting nopreempt", in.Name)
		in.NoPreempt = false
	}
	if in.Priority == 255 && in.State == "BACKUP" && set.has(&in.State) {
		d.warnf(in.Pos, "(%s) priority 255 (address owner) with state BACKUP: the owner always starts as MASTER", in.Name)
		in.State = "MASTER"
	}
	if in.StrictMode {
		if len(in.UnicastPeers) > 0 {
			d.errorf(in.Pos, "(%s) strict mode does not allow unicast peers", in.Name)
		}
		if in.AuthType != "" {
			d.errorf(in.Pos, "(%s) strict mode does not allow authentication", in.Name)
		}
		if in.PreemptDelay != 0 {
			d.errorf(in.Pos, "(%s) strict mode does not allow preempt_delay", in.Name)
		}
		if len(in.VIPs) == 0 {
			d.errorf(in.Pos, "(%s) strict mode needs at least one VIP", in.Name)
		}
		if !set.has(&in.Accept) {
			in.Accept = in.Priority == 255
			if !in.Accept {
				d.notef(in.Pos, "(%s) strict mode: VIPs will not accept traffic (no_accept) unless this node owns them; add `accept` if they must answer", in.Name)
			}
		}
	}
}

func validateVS(vs *VirtualServer, d *Diags) {
	fam4 := !vs.Addr.IsValid() || vs.Addr.Is4()
	if vs.IPFamily == "inet6" {
		fam4 = false
	}
	seen := map[netip.AddrPort]bool{}
	check := func(rs *RealServer, what string) {
		ap := netip.AddrPortFrom(rs.Addr, uint16(rs.Port))
		if seen[ap] {
			d.errorf(rs.Pos, "%s %s is defined twice in virtual_server %s", what, ap, vsName(vs))
		}
		seen[ap] = true
		if (vs.Addr.IsValid() || vs.IPFamily != "") && rs.Addr.Is4() != fam4 {
			d.errorf(rs.Pos, "%s %s is of another address family than virtual_server %s", what, rs.Addr, vsName(vs))
		}
		method := rs.Method
		if method == "" {
			method = vs.Method
		}
		if method != "NAT" && rs.Port != 0 && vs.Port != 0 && rs.Port != vs.Port {
			d.warnf(rs.Pos, "%s %s: lvs_method %s cannot change the port (%d); the virtual port %d is used", what, ap, method, rs.Port, vs.Port)
		}
	}
	for _, rs := range vs.Reals {
		check(rs, "real_server")
	}
	if vs.SorryServer != nil {
		check(vs.SorryServer, "sorry_server")
	}
	if vs.PersistenceGranularity != "" {
		if _, err := netip.ParseAddr(vs.PersistenceGranularity); err != nil {
			if _, err := fmt.Sscanf(vs.PersistenceGranularity, "%d", new(int)); err != nil {
				d.errorf(vs.Pos, "persistence_granularity %q is neither a netmask nor a prefix length", vs.PersistenceGranularity)
			}
		}
	}
}

// xdpTunnel refuses at load the TUN encapsulations the XDP program does
// not build (it sends ipip/ip6ip6 and GUE with nocsum or csum), rather
// than leaving the service to be skipped at apply.
func xdpTunnel(vs *VirtualServer, rs *RealServer, d *Diags) {
	method, t := vs.Method, vs.Tunnel
	if rs.Method != "" {
		method, t = rs.Method, rs.Tunnel
	}
	if method != "TUN" {
		return
	}
	switch {
	case t.TunType == "gre":
		d.errorf(rs.Pos, "real_server %s: tunnel type gre needs `backend ipvs` (the XDP data plane encapsulates ipip and gue)", rs.Addr)
	case t.TunChecksum == "remcsum":
		d.errorf(rs.Pos, "real_server %s: tunnel option remcsum needs `backend ipvs` (the XDP data plane sends gue with nocsum or csum)", rs.Addr)
	case vs.Group == "" && vs.FWMark == 0 && vs.Addr.IsValid() && rs.Addr.IsValid() && vs.Addr.Is4() != rs.Addr.Is4():
		d.errorf(rs.Pos, "real_server %s: TUN between IPv4 and IPv6 is not supported by the XDP data plane (it carries IPv4 in IPv4 and IPv6 in IPv6)", rs.Addr)
	}
}
