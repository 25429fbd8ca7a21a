package config

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
)

func (b *builder) vsGroup(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	g := &VSGroup{Name: name.Text, Pos: n.pos()}
	for _, e := range b.lines(n) {
		ent := VSGroupEntry{Pos: e.pos()}
		if e.key.Text == "fwmark" {
			if len(e.args) == 0 {
				b.d.errorf(e.pos(), "fwmark: missing value")
				continue
			}
			v, err := strconv.ParseUint(e.args[0].Text, 0, 32)
			if err != nil || v == 0 {
				b.d.errorf(e.args[0].Pos, "fwmark: %q is not a mark (1-4294967295)", e.args[0].Text)
				continue
			}
			ent.FWMark = uint32(v)
			if len(e.args) > 1 {
				ent.Family = e.args[1].Text
			}
			g.Entries = append(g.Entries, ent)
			continue
		}
		first, last, err := parseRange(e.key.Text)
		if err != nil {
			b.d.errorf(e.pos(), "virtual_server_group %s: %v", g.Name, err)
			continue
		}
		ent.First, ent.Last = first, last
		if len(e.args) > 0 {
			if p, ok := b.port(e.args[0], "virtual_server_group port"); ok {
				ent.Port = p
			}
		}
		g.Entries = append(g.Entries, ent)
	}
	b.cfg.VSGroups = append(b.cfg.VSGroups, g)
}

// parseRange reads a.b.c.d, a.b.c.d-e, a.b.c.d-w.x.y.z or a prefix.
func parseRange(s string) (netip.Addr, netip.Addr, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, netip.Addr{}, err
		}
		p = p.Masked()
		last := p.Addr()
		for i := 0; i < last.BitLen()-p.Bits() && i < 32; i++ {
			last = last.Next()
			if !last.IsValid() {
				break
			}
		}
		return p.Addr(), lastOf(p), nil
	}
	lo, hi, found := strings.Cut(s, "-")
	first, err := netip.ParseAddr(lo)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	if !found {
		return first, first, nil
	}
	if last, err := netip.ParseAddr(hi); err == nil {
		if last.Less(first) || last.Is4() != first.Is4() {
			return netip.Addr{}, netip.Addr{}, errorString("range " + s + " ends before it starts")
		}
		return first, last, nil
	}
	// a.b.c.d-e: e replaces the last byte (IPv4) or group (IPv6).
	var v uint64
	if first.Is4() {
		v, err = strconv.ParseUint(hi, 10, 8)
	} else {
		v, err = strconv.ParseUint(hi, 16, 16)
	}
	if err != nil {
		return netip.Addr{}, netip.Addr{}, errorString("bad range end in " + s)
	}
	b := first.AsSlice()
	if first.Is4() {
		b[3] = byte(v)
	} else {
		b[14], b[15] = byte(v>>8), byte(v)
	}
	last, _ := netip.AddrFromSlice(b)
	if last.Less(first) {
		return netip.Addr{}, netip.Addr{}, errorString("range " + s + " ends before it starts")
	}
	return first, last, nil
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

var schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos"}

// checkerOpts handles the options shared by virtual_server, real_server and
// checkers.
func (b *builder) checkerOpts(d *CheckerDefaults) map[string]handler {
	return map[string]handler{
		"delay_loop":      func(n *node) { d.dlSet = b.timer(n, 0.000001, 86400, &d.DelayLoop) },
		"connect_timeout": func(n *node) { d.ctSet = b.timer(n, 0.000001, 3600, &d.ConnectTimeout) },
		"retry":           func(n *node) { d.retrySet = b.intRange(n, 0, 1000000, &d.Retry) },
		"nb_get_retry": func(n *node) {
			b.d.notef(n.pos(), "nb_get_retry is deprecated; use retry")
			d.retrySet = b.intRange(n, 0, 1000000, &d.Retry)
		},
		"delay_before_retry": func(n *node) { d.dbrSet = b.timer(n, 0, 86400, &d.DelayBeforeRetry) },
		"warmup": func(n *node) {
			var w Duration
			if b.timer(n, 0, 86400, &w) {
				d.Warmup = &w
			}
		},
		"alpha":            b.setFlag(&d.Alpha),
		"log_all_failures": b.setFlag(&d.LogAllFailures),
		"virtualhost":      func(n *node) { d.VirtualHost = b.str(n) },
	}
}

func (b *builder) method(t Token, what string) (string, bool) {
	switch t.Text {
	case "NAT", "DR", "TUN":
		return t.Text, true
	}
	b.d.warnf(t.Pos, "unknown [%s] routing method for %s, setting default NAT", t.Text, what)
	return "", false
}

func (b *builder) virtualServer(n *node) {
	vs := &VirtualServer{Pos: n.pos()}
	switch {
	case len(n.args) == 0:
		b.arg(n, 0)
		return
	case n.args[0].Text == "fwmark":
		t, ok := b.arg(n, 1)
		if !ok {
			return
		}
		v, err := strconv.ParseUint(t.Text, 0, 32)
		if err != nil || v == 0 {
			b.d.errorf(t.Pos, "virtual_server fwmark: %q is not a mark", t.Text)
			return
		}
		vs.FWMark = uint32(v)
	case n.args[0].Text == "group":
		t, ok := b.arg(n, 1)
		if !ok {
			return
		}
		vs.Group = t.Text
	default:
		a, ok := b.addr(n.args[0], "virtual_server")
		if !ok {
			return
		}
		vs.Addr = a
		if len(n.args) > 1 {
			p, ok := b.port(n.args[1], "virtual_server")
			if !ok {
				return
			}
			vs.Port = p
		}
	}
	where := "virtual_server " + n.argText()
	persistenceSet := false
	b.walk(n.children, where, merge(b.checkerOpts(&vs.Defaults), map[string]handler{
		"lb_algo":    func(n *node) { b.sched(n, vs) },
		"lvs_sched":  func(n *node) { b.sched(n, vs) },
		"lb_kind":    func(n *node) { b.lvsMethod(n, "virtual server", &vs.Method, &vs.Tunnel) },
		"lvs_method": func(n *node) { b.lvsMethod(n, "virtual server", &vs.Method, &vs.Tunnel) },
		"protocol": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			p := strings.ToUpper(t.Text)
			switch p {
			case "TCP", "UDP", "SCTP":
				vs.Protocol = p
				b.mark(&vs.Protocol)
			default:
				b.d.errorf(t.Pos, "unknown protocol %q (TCP, UDP or SCTP)", t.Text)
			}
		},
		"ip_family": func(n *node) {
			t, ok := b.arg(n, 0)
			if ok && t.Text != "inet" && t.Text != "inet6" {
				b.d.errorf(t.Pos, "ip_family: %q is not inet or inet6", t.Text)
				return
			}
			vs.IPFamily = t.Text
		},
		"persistence_timeout": func(n *node) {
			persistenceSet = true
			if len(n.args) == 0 {
				vs.PersistenceTimeout = secs(360)
				return
			}
			b.timer(n, 1, 2678400, &vs.PersistenceTimeout)
		},
		"persistence_granularity": func(n *node) { vs.PersistenceGranularity = b.str(n) },
		"persistence_engine":      func(n *node) { b.d.notef(n.pos(), "persistence_engine is not supported by halo's data planes") },
		"quorum": func(n *node) {
			if b.intRange(n, 0, math.MaxUint32, &vs.Quorum) && vs.Quorum == 0 {
				b.d.warnf(n.args[0].Pos, "Quorum 0 must be in [1, 4294967295]. Setting to 1.")
				vs.Quorum = 1
			}
		},
		"hysteresis":  func(n *node) { b.intRange(n, 0, math.MaxInt32, &vs.Hysteresis) },
		"quorum_up":   b.scriptArg(&vs.QuorumUp),
		"quorum_down": b.scriptArg(&vs.QuorumDown),
		"sorry_server": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			a, ok := b.addr(t, "sorry_server")
			if !ok {
				return
			}
			ss := &RealServer{Addr: a, Pos: n.pos()}
			if len(n.args) > 1 {
				if p, ok := b.port(n.args[1], "sorry_server"); ok {
					ss.Port = p
				}
			}
			vs.SorryServer = ss
		},
		"sorry_server_inhibit": func(n *node) {
			if vs.SorryServer != nil {
				vs.SorryServer.Inhibit = b.flag(n)
			}
		},
		"sorry_server_lvs_method": func(n *node) {
			if vs.SorryServer == nil {
				b.d.warnf(n.pos(), "sorry_server forwarding used without sorry_server")
				return
			}
			b.lvsMethod(n, "sorry server", &vs.SorryServer.Method, &vs.SorryServer.Tunnel)
		},
		"inhibit_on_failure": b.setFlag(&vs.Inhibit),
		"omega":              b.setFlag(&vs.Omega),
		"ha_suspend":         b.setFlag(&vs.HASuspend),
		"ops":                b.setFlag(&vs.OPS),
		"real_server":        func(n *node) { b.realServer(n, vs) },
	}), "nat_mask", "smtp_alert", "lvs_timeouts", "lvs_flush", "lvs_flush_on_stop", "retry_on_failure",
		"quorum_up_down_notify", "delay_before_retry_on_failure")
	if vs.FWMark != 0 && b.given(&vs.Protocol) {
		b.d.warnf(n.pos(), "protocol specified for fwmark - protocol will be ignored")
	}
	if vs.Port == 0 && vs.FWMark == 0 && vs.Group == "" && !persistenceSet {
		b.d.errorf(n.pos(), "virtual_server %s has no port; a port may be omitted only with persistence_timeout", vs.Addr)
	}
	b.cfg.VirtualServers = append(b.cfg.VirtualServers, vs)
}

func (b *builder) sched(n *node, vs *VirtualServer) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	if !contains(schedulers, t.Text) {
		b.d.warnf(t.Pos, "invalid lvs_scheduler '%s' - ignoring, using the default 'wlc'", t.Text)
		return
	}
	vs.Scheduler = t.Text
	b.mark(&vs.Scheduler)
	for _, f := range n.args[1:] {
		switch f.Text {
		case "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback":
			vs.SchedFlags = append(vs.SchedFlags, f.Text)
		case "ops":
			vs.OPS = true
		default:
			b.d.warnf(f.Pos, "unknown scheduler flag %q", f.Text)
		}
	}
}

// lvsMethod reads `lvs_method METHOD [type ipip|gue port N|gre]
// [nocsum|csum|remcsum]` (alias lb_kind on a virtual server) into method and
// tun, with keepalived's checks of the tunnel options; who is "virtual
// server", "real server" or "sorry server" in messages.
func (b *builder) lvsMethod(n *node, who string, method *string, tun *Tunnel) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	m, ok := b.method(t, strings.ReplaceAll(who, " ", "_"))
	if !ok {
		return
	}
	*method = m
	b.mark(method)
	var nt Tunnel
	if m == "TUN" {
		nt.TunType = "ipip"
	}
	opts := false
	for i := 1; i < len(n.args); i++ {
		a := n.args[i]
		opts = true
		switch a.Text {
		case "type", "port":
			if i+1 >= len(n.args) {
				b.d.errorf(a.Pos, "%s: missing value", a.Text)
				continue
			}
			i++
			v := n.args[i]
			if a.Text == "type" {
				switch v.Text {
				case "ipip", "gue", "gre":
					nt.TunType = v.Text
				default:
					b.d.errorf(v.Pos, "Unknown tunnel type %s for %s.", v.Text, who)
				}
				continue
			}
			p, err := strconv.Atoi(v.Text)
			if err != nil || p < 1 || p > 65535 {
				b.d.errorf(v.Pos, "Invalid gue tunnel port %s for %s.", v.Text, who)
				continue
			}
			nt.TunPort = p
		case "csum", "nocsum", "remcsum":
			nt.TunChecksum = a.Text
		default:
			b.d.errorf(a.Pos, "%s: unknown word %q after %s", n.key.Text, a.Text, m)
		}
	}
	if m != "TUN" {
		if opts {
			b.d.warnf(n.pos(), "%s: tunnel options apply only to TUN; ignored for %s", n.key.Text, m)
		}
		*tun = Tunnel{}
		return
	}
	// keepalived's checks; an inconsistent tunnel is an error in halo
	// because no data plane could build it.
	switch {
	case (nt.TunType == "gue") != (nt.TunPort != 0):
		b.d.errorf(n.pos(), "gue tunnels require port, otherwise cannot have port.")
	case nt.TunType == "ipip" && nt.TunChecksum != "":
		b.d.errorf(n.pos(), "ipip tunnels do not support checksum option.")
	case nt.TunType == "gre" && nt.TunChecksum == "remcsum":
		b.d.errorf(n.pos(), "gre tunnels do not support remote checksum option.")
	}
	*tun = nt
}

func (b *builder) realServer(n *node, vs *VirtualServer) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	a, ok := b.addr(t, "real_server")
	if !ok {
		return
	}
	rs := &RealServer{Addr: a, Pos: n.pos()}
	if len(n.args) > 1 {
		if p, ok := b.port(n.args[1], "real_server"); ok {
			rs.Port = p
		}
	}
	where := "real_server " + n.argText()
	checker := func(typ string) handler {
		return func(n *node) {
			if c := b.checker(n, typ, where, rs.Addr); c != nil {
				rs.Checkers = append(rs.Checkers, c)
			}
		}
	}
	b.walk(n.children, where, merge(b.checkerOpts(&rs.Defaults), map[string]handler{
		"weight": func(n *node) { b.intRange(n, 0, math.MaxInt32, &rs.Weight) },
		"inhibit_on_failure": func(n *node) {
			rs.Inhibit = b.flag(n)
			b.mark(&rs.Inhibit)
		},
		"notify_up":   b.scriptArg(&rs.NotifyUp),
		"notify_down": b.scriptArg(&rs.NotifyDown),
		"uthreshold":  func(n *node) { b.intRange(n, 0, math.MaxInt32, &rs.UThreshold) },
		"lthreshold":  func(n *node) { b.intRange(n, 0, math.MaxInt32, &rs.LThreshold) },
		"lvs_method":  func(n *node) { b.lvsMethod(n, "real server", &rs.Method, &rs.Tunnel) },
		"TCP_CHECK":   checker("TCP_CHECK"),
		"HTTP_GET":    checker("HTTP_GET"),
		"SSL_GET":     checker("SSL_GET"),
		"MISC_CHECK":  checker("MISC_CHECK"),
		"PING_CHECK":  checker("PING_CHECK"),
		"UDP_CHECK":   checker("UDP_CHECK"),
		"DNS_CHECK":   checker("DNS_CHECK"),
		"SMTP_CHECK":  checker("SMTP_CHECK"),
	}), "BFD_CHECK", "FILE_CHECK", "smtp_alert")
	vs.Reals = append(vs.Reals, rs)
}
