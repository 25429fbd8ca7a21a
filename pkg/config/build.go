package config

import (
	"encoding/hex"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// builder turns the keyword tree into the typed model, reporting problems
// with their positions and carrying on, so one run reports all of them.
type builder struct {
	d   *Diags
	cfg *Config
}

type handler func(n *node)

// walk dispatches each node to its handler. Keywords halo knows but does not
// act on get a note; anything else is an unknown keyword (a warning, as in
// keepalived). An unknown block is skipped whole, by brace balance, instead
// of keepalived's confusing re-parse of its body at the current level.
func (b *builder) walk(nodes []*node, where string, h map[string]handler, ignored ...string) {
	for _, n := range nodes {
		if f, ok := h[n.key.Text]; ok {
			f(n)
			continue
		}
		if contains(ignored, n.key.Text) {
			b.d.notef(n.pos(), "%q is accepted but not used by halo", n.key.Text)
			continue
		}
		if n.key.Text == "{" {
			continue // orphan block, already reported
		}
		if n.block {
			b.d.warnf(n.pos(), "unknown block %q in %s, skipped", n.key.Text, where)
		} else {
			b.d.warnf(n.pos(), "unknown keyword %q in %s", n.key.Text, where)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// arg returns the i-th argument or reports it missing.
func (b *builder) arg(n *node, i int) (Token, bool) {
	if i < len(n.args) {
		return n.args[i], true
	}
	p := n.pos()
	if len(n.args) > 0 {
		last := n.args[len(n.args)-1]
		p = last.Pos
		p.Col += len(last.Text)
	} else {
		p.Col += len(n.key.Text)
	}
	b.d.errorf(p, "%s: missing value", n.key.Text)
	return Token{}, false
}

func (b *builder) str(n *node) string {
	t, _ := b.arg(n, 0)
	return t.Text
}

func (b *builder) intRange(n *node, lo, hi int, dst *int) bool {
	t, ok := b.arg(n, 0)
	if !ok {
		return false
	}
	v, err := strconv.Atoi(t.Text)
	if err != nil {
		b.d.errorf(t.Pos, "%s: %q is not a number", n.key.Text, t.Text)
		return false
	}
	if v < lo || v > hi {
		b.d.errorf(t.Pos, "%s: %d out of range %d-%d", n.key.Text, v, lo, hi)
		return false
	}
	*dst = v
	return true
}

// timer parses seconds with up to 6 decimals.
func (b *builder) timer(n *node, lo, hi float64, dst *Duration) bool {
	t, ok := b.arg(n, 0)
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(t.Text, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		b.d.errorf(t.Pos, "%s: %q is not a time in seconds", n.key.Text, t.Text)
		return false
	}
	if v < lo || v > hi {
		b.d.errorf(t.Pos, "%s: %s out of range %g-%g seconds", n.key.Text, t.Text, lo, hi)
		return false
	}
	*dst = secs(v)
	return true
}

// flag is a boolean keyword: bare means true, else on/off/true/false/yes/no.
func (b *builder) flag(n *node) bool {
	if len(n.args) == 0 {
		return true
	}
	switch n.args[0].Text {
	case "on", "true", "yes":
		return true
	case "off", "false", "no":
		return false
	}
	b.d.errorf(n.args[0].Pos, "%s: %q is not a boolean (on|off|true|false|yes|no)", n.key.Text, n.args[0].Text)
	return false
}

func (b *builder) setFlag(dst *bool) handler { return func(n *node) { *dst = b.flag(n) } }

func (b *builder) addr(t Token, what string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(t.Text)
	if err != nil {
		b.d.errorf(t.Pos, "%s: %q is not an IP address", what, t.Text)
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (b *builder) addrArg(n *node, dst *netip.Addr) handler {
	return func(n *node) {
		if t, ok := b.arg(n, 0); ok {
			if a, ok := b.addr(t, n.key.Text); ok {
				*dst = a
			}
		}
	}
}

func (b *builder) port(t Token, what string) (int, bool) {
	v, err := strconv.Atoi(t.Text)
	if err != nil || v < 0 || v > 65535 {
		b.d.errorf(t.Pos, "%s: %q is not a port (0-65535)", what, t.Text)
		return 0, false
	}
	return v, true
}

// lines returns the entries of a value block: each child statement is one
// entry (its words), as keepalived reads virtual_ipaddress and friends.
func (b *builder) lines(n *node) []*node {
	if !n.block {
		if len(n.args) > 0 {
			// keepalived also accepts a single entry on the keyword's line
			// for a few lists; treat the arguments as one entry.
			return []*node{{key: n.args[0], args: n.args[1:], raw: n.raw}}
		}
		b.d.errorf(n.pos(), "%s: expected a { } block", n.key.Text)
		return nil
	}
	return n.children
}

// script parses a script keyword's value: "cmd args" [user [group]].
func (b *builder) script(n *node) *Script {
	rest := strings.TrimSpace(strings.TrimPrefix(n.raw, n.key.Text))
	if rest == "" {
		b.arg(n, 0)
		return nil
	}
	words, err := shellWords(rest)
	if err != nil || len(words) == 0 {
		b.d.errorf(n.pos(), "%s: %v", n.key.Text, err)
		return nil
	}
	s := &Script{Raw: words[0], Pos: n.args[0].Pos}
	argv, err := shellWords(words[0])
	if err != nil || len(argv) == 0 {
		b.d.errorf(s.Pos, "%s: cannot split command %q: %v", n.key.Text, words[0], err)
		return nil
	}
	s.Argv = argv
	s.Shell = needsShell(words[0])
	if len(words) > 1 {
		s.User = words[1]
	}
	if len(words) > 2 {
		s.Group = words[2]
	}
	if len(words) > 3 {
		b.d.warnf(n.pos(), "%s: extra words after user and group: %q", n.key.Text, strings.Join(words[3:], " "))
	}
	return s
}

func (b *builder) scriptArg(dst **Script) handler { return func(n *node) { *dst = b.script(n) } }

// build walks the root of the tree.
func (b *builder) build(root []*node) {
	c := b.cfg
	b.walk(root, "the top level", map[string]handler{
		"global_defs":          func(n *node) { b.global(n) },
		"vrrp_script":          func(n *node) { b.vrrpScript(n) },
		"vrrp_instance":        func(n *node) { b.instance(n) },
		"vrrp_sync_group":      func(n *node) { b.syncGroup(n) },
		"track_file":           func(n *node) { b.trackFile(n) },
		"vrrp_track_file":      func(n *node) { b.d.notef(n.pos(), "vrrp_track_file is deprecated; use track_file"); b.trackFile(n) },
		"virtual_server_group": func(n *node) { b.vsGroup(n) },
		"virtual_server":       func(n *node) { b.virtualServer(n) },
		"static_ipaddress": func(n *node) {
			for _, e := range b.lines(n) {
				if v := b.vip(e); v != nil {
					c.StaticAddrs = append(c.StaticAddrs, v)
				}
			}
		},
		"static_routes": func(n *node) { c.StaticRoutes = append(c.StaticRoutes, b.routes(n, false)...) },
		"static_rules":  func(n *node) { c.StaticRules = append(c.StaticRules, b.rules(n)...) },
		"dataplane":     func(n *node) { b.dataplane(n) },
	}, "vrrp_track_process", "track_group", "garp_group", "linkbeat_interfaces", "interface_up_down_delays",
		"bfd_instance", "SSL", "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "instance",
		"use_pid_dir", "child_wait_time", "linkbeat_use_polling")
}

func (b *builder) global(n *node) {
	g := &b.cfg.Global
	g.Pos = n.pos()
	fifo := func(dst **FIFO) handler {
		return func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			f := *dst
			if f == nil {
				f = &FIFO{}
				*dst = f
			}
			f.Path = t.Text
			if len(n.args) > 1 {
				f.User = n.args[1].Text
			}
			if len(n.args) > 2 {
				f.Group = n.args[2].Text
			}
		}
	}
	fifoScript := func(dst **FIFO) handler {
		return func(n *node) {
			if *dst == nil {
				*dst = &FIFO{}
			}
			(*dst).Script = b.script(n)
		}
	}
	b.walk(n.children, "global_defs", map[string]handler{
		"router_id": func(n *node) { g.RouterID = b.str(n) },
		"notification_email": func(n *node) {
			for _, e := range b.lines(n) {
				g.NotificationEmail = append(g.NotificationEmail, e.key.Text)
			}
		},
		"notification_email_from": func(n *node) { g.NotificationEmailFrom = b.str(n) },
		"smtp_server": func(n *node) {
			g.SMTPServer = b.str(n)
			if len(n.args) > 1 {
				g.SMTPServer += ":" + n.args[1].Text
			}
		},
		"smtp_connect_timeout": func(n *node) { b.timer(n, 0, 3600, &g.SMTPConnectTimeout) },
		"smtp_alert":           b.setFlag(&g.SMTPAlert),
		"vrrp_mcast_group4": func(n *node) {
			if t, ok := b.arg(n, 0); ok {
				if a, ok := b.addr(t, n.key.Text); ok {
					if !a.Is4() || !a.IsMulticast() {
						b.d.errorf(t.Pos, "vrrp_mcast_group4: %s is not an IPv4 multicast address", a)
						return
					}
					g.VRRPMcastGroup4 = a
				}
			}
		},
		"vrrp_mcast_group6": func(n *node) {
			if t, ok := b.arg(n, 0); ok {
				if a, ok := b.addr(t, n.key.Text); ok {
					if !a.Is6() || !a.IsMulticast() {
						b.d.errorf(t.Pos, "vrrp_mcast_group6: %s is not an IPv6 multicast address", a)
						return
					}
					g.VRRPMcastGroup6 = a
				}
			}
		},
		"vrrp_version":                    func(n *node) { b.intRange(n, 2, 3, &g.VRRPVersion) },
		"vrrp_strict":                     b.setFlag(&g.VRRPStrict),
		"vrrp_garp_master_delay":          func(n *node) { b.timer(n, 0, 3600, &g.GARP.MasterDelay) },
		"vrrp_garp_master_repeat":         func(n *node) { b.intRange(n, 1, 1000, &g.GARP.MasterRepeat) },
		"vrrp_garp_master_refresh":        func(n *node) { b.timer(n, 0, 86400, &g.GARP.MasterRefresh) },
		"vrrp_garp_master_refresh_repeat": func(n *node) { b.intRange(n, 1, 1000, &g.GARP.MasterRefreshRepeat) },
		"vrrp_garp_lower_prio_delay":      func(n *node) { b.timer(n, 0, 3600, &g.GARP.LowerPrioDelay) },
		"vrrp_garp_lower_prio_repeat":     func(n *node) { b.intRange(n, 0, 1000, &g.GARP.LowerPrioRepeat) },
		"vrrp_garp_interval":              func(n *node) { b.timer(n, 0, 1, &g.GARP.Interval) },
		"vrrp_gna_interval":               func(n *node) { b.timer(n, 0, 1, &g.GARP.GNAInterval) },
		"vrrp_min_garp":                   b.setFlag(&g.GARP.MinGARP),
		"vrrp_skip_check_adv_addr":        b.setFlag(&g.SkipCheckAdvAddr),
		"vrrp_check_unicast_src":          b.setFlag(&g.CheckUnicastSrc),
		"v3_checksum_as_v2": func(n *node) {
			g.V3ChecksumAsV2 = b.flag(n)
			b.d.notef(n.pos(), "v3_checksum_as_v2 is unknown to keepalived 2.2.7 (upstream-only); halo honours it")
		},
		"vrrp_lower_prio_no_advert":    b.setFlag(&g.LowerPrioNoAdvert),
		"lower_prio_no_advert":         b.setFlag(&g.LowerPrioNoAdvert),
		"vrrp_higher_prio_send_advert": b.setFlag(&g.HigherPrioSendAdvert),
		"higher_prio_send_advert":      b.setFlag(&g.HigherPrioSendAdvert),
		"script_user": func(n *node) {
			g.ScriptUser = b.str(n)
			if len(n.args) > 1 {
				g.ScriptGroup = n.args[1].Text
			}
		},
		"enable_script_security":       b.setFlag(&g.EnableScriptSecurity),
		"notify_fifo":                  fifo(&g.NotifyFIFO),
		"notify_fifo_script":           fifoScript(&g.NotifyFIFO),
		"vrrp_notify_fifo":             fifo(&g.VRRPNotifyFIFO),
		"vrrp_notify_fifo_script":      fifoScript(&g.VRRPNotifyFIFO),
		"lvs_notify_fifo":              fifo(&g.LVSNotifyFIFO),
		"lvs_notify_fifo_script":       fifoScript(&g.LVSNotifyFIFO),
		"vrrp_startup_delay":           func(n *node) { b.timer(n, 0, 3600, &g.VRRPStartupDelay) },
		"vrrp_down_timer_adverts":      func(n *node) { b.intRange(n, 1, 100, &g.DownTimerAdverts) },
		"lvs_id":                       func(n *node) { g.LVSID = b.str(n) },
		"vrrp_notify_priority_changes": b.setFlag(&g.NotifyPriorityChanges),
	}, "router_id_from_hostname", "max_auto_priority", "vrrp_iptables", "vrrp_ipsets", "vrrp_no_swap",
		"checker_no_swap", "bfd_no_swap", "vrrp_priority", "checker_priority", "bfd_priority", "vrrp_rt_priority",
		"checker_rt_priority", "bfd_rt_priority", "vrrp_cpu_affinity", "checker_cpu_affinity", "snmp_socket",
		"enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3",
		"enable_traps", "enable_dbus", "dynamic_interfaces", "lvs_timeouts", "lvs_flush", "lvs_sync_daemon",
		"nftables", "nftables_priority", "nftables_counters", "nftables_ifindex", "vrrp_rx_bufs_policy",
		"vrrp_rx_bufs_multiplier", "vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs",
		"checker_log_all_failures", "umask", "fifo_write_vrrp_states_on_reload", "notify_fifo_user",
		"vrrp_garp_extra_if", "vrrp_gna_extra_if", "process_names", "process_name", "vrrp_process_name",
		"checker_process_name", "bfd_process_name", "linkbeat_use_polling", "local_name", "no_email_faults",
		"vrrp_startup_delay_log", "random_seed", "reload_check_config", "reload_time_file", "reload_repeat",
		"reload_file", "config_save_dir", "tmp_config_directory", "data_use_instance", "vrrp_track_process_dump",
		"vrrp_log_unknown_vrids", "log_unknown_vrids", "vrrp_use_process_cmdline", "vrrp_use_process_comm",
		"vrrp_skip_check_adv_addr_off", "script_security")
}

func (b *builder) vrrpScript(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	s := &VRRPScript{Name: name.Text, Interval: secs(1), Rise: 1, Fall: 1, Pos: n.pos()}
	timeoutSet := false
	b.walk(n.children, "vrrp_script "+name.Text, map[string]handler{
		"script":   func(n *node) { s.Script = b.script(n) },
		"interval": func(n *node) { b.timer(n, 0.000001, 86400, &s.Interval) },
		"timeout":  func(n *node) { timeoutSet = b.timer(n, 0.000001, 86400, &s.Timeout) },
		"weight": func(n *node) {
			b.intRange(n, -253, 253, &s.Weight)
			if len(n.args) > 1 && n.args[1].Text == "reverse" {
				s.Reverse = true
			}
		},
		"rise": func(n *node) { b.intRange(n, 1, 1000, &s.Rise) },
		"fall": func(n *node) { b.intRange(n, 1, 1000, &s.Fall) },
		"user": func(n *node) {
			if s.Script != nil {
				s.Script.User = b.str(n)
			}
		},
		"init_fail": b.setFlag(&s.InitFail),
	})
	if !timeoutSet {
		s.Timeout = s.Interval
	}
	if s.Script == nil {
		b.d.errorf(n.pos(), "no script set for vrrp_script %s - removing", s.Name)
		return
	}
	b.cfg.Scripts = append(b.cfg.Scripts, s)
}

func (b *builder) trackFile(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	tf := &TrackFile{Name: name.Text, Weight: 1, Pos: n.pos()}
	b.walk(n.children, "track_file "+name.Text, map[string]handler{
		"file": func(n *node) { tf.File = b.str(n) },
		"weight": func(n *node) {
			b.intRange(n, -254, 254, &tf.Weight)
			if len(n.args) > 1 && n.args[1].Text == "reverse" {
				tf.Reverse = true
			}
		},
		"init_file": func(n *node) {
			v := 0
			if len(n.args) > 0 {
				b.intRange(n, math.MinInt32, math.MaxInt32, &v)
			}
			tf.InitVal = &v
		},
	})
	if tf.File == "" {
		b.d.errorf(n.pos(), "track_file %s has no file", tf.Name)
		return
	}
	b.cfg.TrackFiles = append(b.cfg.TrackFiles, tf)
}

// trackRefs parses track_script / track_interface / track_file lists:
// NAME [weight W [reverse]].
func (b *builder) trackRefs(n *node) []TrackRef {
	var out []TrackRef
	for _, e := range b.lines(n) {
		r := TrackRef{Name: e.key.Text, Pos: e.pos()}
		for i := 0; i < len(e.args); i++ {
			switch e.args[i].Text {
			case "weight":
				if i+1 >= len(e.args) {
					b.d.errorf(e.args[i].Pos, "weight: missing value")
					continue
				}
				w, err := strconv.Atoi(e.args[i+1].Text)
				if err != nil || w < -254 || w > 254 {
					b.d.errorf(e.args[i+1].Pos, "weight: %q must be a number in -254..254", e.args[i+1].Text)
				} else {
					r.Weight = &w
				}
				i++
			case "reverse":
				r.Reverse = true
			default:
				b.d.warnf(e.args[i].Pos, "unknown word %q after %s", e.args[i].Text, r.Name)
			}
		}
		out = append(out, r)
	}
	return out
}

// vip parses one virtual_ipaddress entry with `ip addr` options.
func (b *builder) vip(e *node) *VIP {
	v := &VIP{Pos: e.pos()}
	p, err := parsePrefix(e.key.Text)
	if err != nil {
		b.d.errorf(e.pos(), "virtual address %q: %v", e.key.Text, err)
		return nil
	}
	v.Prefix = p
	val := func(i *int) string {
		if *i+1 >= len(e.args) {
			b.d.errorf(e.args[*i].Pos, "%s: missing value", e.args[*i].Text)
			*i = len(e.args)
			return ""
		}
		*i++
		return e.args[*i].Text
	}
	for i := 0; i < len(e.args); i++ {
		switch w := e.args[i].Text; w {
		case "brd", "broadcast":
			v.Brd = val(&i)
		case "dev":
			v.Dev = val(&i)
		case "scope":
			v.Scope = val(&i)
			switch v.Scope {
			case "global", "site", "link", "host", "nowhere":
			default:
				if _, err := strconv.Atoi(v.Scope); err != nil {
					b.d.errorf(e.args[i].Pos, "scope: unknown scope %q", v.Scope)
				}
			}
		case "label":
			v.Label = val(&i)
		case "peer":
			s := val(&i)
			if s != "" {
				pp, err := parsePrefix(s)
				if err != nil {
					b.d.errorf(e.args[i].Pos, "peer %q: %v", s, err)
				}
				v.Peer = pp
			}
		case "preferred_lft":
			v.PreferredLft = val(&i)
		case "home":
			v.Home = true
		case "-nodad", "nodad":
			v.NoDAD = true
		case "noprefixroute":
			v.NoPrefixRoute = true
		case "autojoin":
			v.AutoJoin = true
		case "no_track":
			v.NoTrack = true
		case "use_vmac":
			v.UseVMAC = true
		case "track_group":
			val(&i)
		default:
			b.d.errorf(e.args[i].Pos, "virtual address %s: unknown option %q", e.key.Text, w)
		}
	}
	return v
}

// parsePrefix accepts IP or IP/len; a bare address is a host prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// routes parses virtual_routes / static_routes. A route keepalived tracks
// needs a device (keepalived: "cannot track route … with no interface
// specified") unless it says no_track or is a blackhole-type route.
func (b *builder) routes(n *node, virtual bool) []*Route {
	var out []*Route
	for _, e := range b.lines(n) {
		words := append([]string{e.key.Text}, tokTexts(e.args)...)
		r := &Route{Words: words, Pos: e.pos()}
		toks := append([]Token{e.key}, e.args...)
		dstDone := false
		for i := 0; i < len(toks); i++ {
			w := toks[i].Text
			next := func() string {
				if i+1 < len(toks) {
					i++
					return toks[i].Text
				}
				b.d.errorf(toks[i].Pos, "route: %s needs a value", w)
				return ""
			}
			switch w {
			case "src", "table", "metric", "preference", "proto", "protocol", "scope", "mtu", "advmss",
				"realms", "tos", "dsfield", "weight", "onlink", "expires", "pref", "nexthop", "rtt", "rttvar",
				"window", "cwnd", "initcwnd", "initrwnd", "ssthresh", "features", "quickack", "congctl",
				"hoplimit", "reordering", "fastopen_no_cookie", "lock", "encap":
				if w != "onlink" && w != "lock" {
					next()
				}
			case "dev", "oif":
				r.Dev = next()
			case "via", "gw":
				if w == "gw" {
					b.d.notef(toks[i].Pos, "route keyword gw is deprecated; use via")
				}
				r.Via = next()
			case "or":
				b.d.notef(toks[i].Pos, "route keyword or is deprecated")
				next()
			case "no_track":
				r.NoTrack = true
			case "blackhole", "unreachable", "prohibit", "throw", "unicast", "local", "broadcast", "multicast", "anycast", "nat":
				if !dstDone {
					r.Type = w
				}
			case "to":
			default:
				if !dstDone {
					p, err := parsePrefix(w)
					if w == "default" {
						p, err = netip.MustParsePrefix("0.0.0.0/0"), nil
					}
					if err != nil {
						b.d.errorf(toks[i].Pos, "route: invalid destination %q", w)
					}
					r.Dst = p
					dstDone = true
				} else {
					b.d.warnf(toks[i].Pos, "route: unknown word %q", w)
				}
			}
		}
		if !dstDone {
			b.d.errorf(e.pos(), "route has no destination")
			continue
		}
		if virtual && r.Dev == "" && !r.NoTrack && r.Type == "" {
			b.d.errorf(e.pos(), "cannot track route %s with no interface specified", r.Dst)
		}
		out = append(out, r)
	}
	return out
}

func (b *builder) rules(n *node) []*Rule {
	var out []*Rule
	for _, e := range b.lines(n) {
		toks := append([]Token{e.key}, e.args...)
		r := &Rule{Words: tokTexts(toks), Pos: e.pos()}
		for i := 0; i < len(toks); i++ {
			w := toks[i].Text
			if i+1 >= len(toks) {
				continue
			}
			switch w {
			case "from", "to":
				i++
				p, err := parsePrefix(toks[i].Text)
				if toks[i].Text == "all" {
					err = nil
				}
				if err != nil {
					b.d.errorf(toks[i].Pos, "invalid rule %s address %q", w, toks[i].Text)
					continue
				}
				if w == "from" {
					r.From = p
				} else {
					r.To = p
				}
			case "table", "lookup":
				i++
				r.Table = toks[i].Text
			}
		}
		out = append(out, r)
	}
	return out
}

func tokTexts(ts []Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Text
	}
	return out
}

func (b *builder) instance(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	in := &VRRPInstance{Name: name.Text, Pos: n.pos(), GARP: GARP{}}
	garpSet := map[string]bool{}
	garpTimer := func(dst *Duration, key string, hi float64) handler {
		return func(n *node) {
			if b.timer(n, 0, hi, dst) {
				garpSet[key] = true
			}
		}
	}
	garpInt := func(dst *int, key string, lo int) handler {
		return func(n *node) {
			if b.intRange(n, lo, 1000, dst) {
				garpSet[key] = true
			}
		}
	}
	where := "vrrp_instance " + in.Name
	b.walk(n.children, where, map[string]handler{
		"state": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			switch t.Text {
			case "MASTER", "BACKUP":
				if in.State == "MASTER" && t.Text == "BACKUP" {
					b.d.errorf(t.Pos, "(%s) state BACKUP after state MASTER is ignored", in.Name)
					return
				}
				in.State = t.Text
				in.stateSet = true
			default:
				b.d.warnf(t.Pos, "(%s) unknown state '%s', defaulting to BACKUP", in.Name, t.Text)
			}
		},
		"interface": func(n *node) { in.Interface = b.str(n) },
		"virtual_router_id": func(n *node) {
			in.vridSet = true
			b.intRange(n, 1, 255, &in.VRID)
		},
		"priority": func(n *node) {
			if b.intRange(n, 1, 255, &in.Priority) {
				in.prioSet = true
			}
		},
		"advert_int": func(n *node) { b.timer(n, 0.01, 255, &in.AdvertInt) },
		"version":    func(n *node) { b.intRange(n, 2, 3, &in.Version) },
		"authentication": func(n *node) {
			b.walk(n.children, where+" authentication", map[string]handler{
				"auth_type": func(n *node) {
					t, ok := b.arg(n, 0)
					if !ok {
						return
					}
					if t.Text != "PASS" && t.Text != "AH" {
						b.d.warnf(t.Pos, "(%s) unknown authentication type '%s'", in.Name, t.Text)
						return
					}
					in.AuthType = t.Text
				},
				"auth_pass": func(n *node) {
					t, ok := b.arg(n, 0)
					if !ok {
						return
					}
					in.AuthPass = t.Text
					if len(in.AuthPass) > 8 {
						b.d.warnf(t.Pos, "(%s) truncating auth_pass to 8 characters", in.Name)
						in.AuthPass = in.AuthPass[:8]
					}
				},
			})
		},
		"virtual_ipaddress": func(n *node) {
			for _, e := range b.lines(n) {
				if v := b.vip(e); v != nil {
					in.VIPs = append(in.VIPs, v)
				}
			}
		},
		"virtual_ipaddress_excluded": func(n *node) {
			for _, e := range b.lines(n) {
				if v := b.vip(e); v != nil {
					in.ExcludedVIPs = append(in.ExcludedVIPs, v)
				}
			}
		},
		"virtual_routes": func(n *node) { in.VirtualRoutes = append(in.VirtualRoutes, b.routes(n, true)...) },
		"virtual_rules":  func(n *node) { in.VirtualRules = append(in.VirtualRules, b.rules(n)...) },
		"unicast_src_ip": b.addrArg(n, &in.UnicastSrcIP),
		"unicast_peer": func(n *node) {
			for _, e := range b.lines(n) {
				a, ok := b.addr(e.key, "unicast_peer")
				if !ok {
					continue
				}
				p := Peer{Addr: a}
				for i := 0; i+1 < len(e.args); i += 2 {
					var dst *int
					switch e.args[i].Text {
					case "min_ttl":
						dst = &p.MinTTL
					case "max_ttl":
						dst = &p.MaxTTL
					default:
						b.d.warnf(e.args[i].Pos, "unicast_peer: unknown option %q", e.args[i].Text)
						continue
					}
					v, err := strconv.Atoi(e.args[i+1].Text)
					if err != nil || v < 0 || v > 255 {
						b.d.errorf(e.args[i+1].Pos, "unicast_peer %s: %q must be 0-255", e.args[i].Text, e.args[i+1].Text)
						continue
					}
					*dst = v
				}
				if p.MinTTL != 0 || p.MaxTTL != 0 {
					in.CheckUnicastSrc = true
				}
				in.UnicastPeers = append(in.UnicastPeers, p)
			}
		},
		"unicast_ttl":   func(n *node) { b.intRange(n, 1, 255, &in.UnicastTTL) },
		"mcast_src_ip":  b.addrArg(n, &in.McastSrcIP),
		"mcast_dst_ip":  b.addrArg(n, &in.McastDstIP),
		"nopreempt":     b.setFlag(&in.NoPreempt),
		"preempt":       func(n *node) { in.NoPreempt = !b.flag(n) },
		"preempt_delay": func(n *node) { b.timer(n, 0, 1000, &in.PreemptDelay) },
		"track_script":  func(n *node) { in.TrackScripts = append(in.TrackScripts, b.trackRefs(n)...) },
		"track_interface": func(n *node) {
			in.TrackInterfaces = append(in.TrackInterfaces, b.trackRefs(n)...)
		},
		"track_file":                 func(n *node) { in.TrackFiles = append(in.TrackFiles, b.trackRefs(n)...) },
		"notify_master":              b.scriptArg(&in.NotifyMaster),
		"notify_backup":              b.scriptArg(&in.NotifyBackup),
		"notify_fault":               b.scriptArg(&in.NotifyFault),
		"notify_stop":                b.scriptArg(&in.NotifyStop),
		"notify_deleted":             func(n *node) { in.NotifyDeleted = b.optScript(n) },
		"notify":                     b.scriptArg(&in.Notify),
		"notify_master_rx_lower_pri": b.scriptArg(&in.NotifyRxLower),
		"use_vmac": func(n *node) {
			in.UseVMAC = true
			if len(n.args) > 0 {
				in.VMACName = n.args[0].Text
				if len(in.VMACName) > 15 {
					b.d.errorf(n.args[0].Pos, "use_vmac: interface name %q longer than 15 characters", in.VMACName)
				}
			}
		},
		"vmac_xmit_base":             b.setFlag(&in.VMACXmitBase),
		"garp_master_delay":          garpTimer(&in.GARP.MasterDelay, "md", 3600),
		"garp_master_repeat":         garpInt(&in.GARP.MasterRepeat, "mr", 1),
		"garp_master_refresh":        garpTimer(&in.GARP.MasterRefresh, "mf", 86400),
		"garp_master_refresh_repeat": garpInt(&in.GARP.MasterRefreshRepeat, "mfr", 1),
		"garp_lower_prio_delay":      garpTimer(&in.GARP.LowerPrioDelay, "ld", 3600),
		"garp_lower_prio_repeat":     garpInt(&in.GARP.LowerPrioRepeat, "lr", 0),
		"garp_interval":              garpTimer(&in.GARP.Interval, "i", 1),
		"gna_interval":               garpTimer(&in.GARP.GNAInterval, "gi", 1),
		"accept":                     func(n *node) { in.Accept = b.flag(n); in.acceptSet = true },
		"no_accept":                  func(n *node) { in.Accept = !b.flag(n); in.acceptSet = true },
		"strict_mode":                b.setFlag(&in.StrictMode),
		"dont_track_primary":         b.setFlag(&in.DontTrackPrimary),
		"skip_check_adv_addr":        b.setFlag(&in.SkipCheckAdvAddr),
		"check_unicast_src":          b.setFlag(&in.CheckUnicastSrc),
		"lower_prio_no_advert":       b.setFlag(&in.LowerPrioNoAdvert),
		"higher_prio_send_advert":    b.setFlag(&in.HigherPrioSendAdvert),
		"v3_checksum_as_v2":          b.setFlag(&in.V3ChecksumAsV2),
		"smtp_alert":                 b.setFlag(&in.SMTPAlert),
		"lvs_sync_daemon_interface": func(n *node) {
			b.d.notef(n.pos(), "lvs_sync_daemon_interface in a vrrp_instance is deprecated and not used by halo")
		},
	}, "debug", "native_ipv6", "unicast_fault_no_peer", "old_unicast_checksum", "kernel_rx_buf_size",
		"track_src_ip", "track_process", "track_bfd", "linkbeat_use_polling", "notify_priority_changes",
		"virtual_rules_excluded", "garp_extra_if", "vmac_garp_intvl", "nftables_ifindex")
	b.finishInstance(in, garpSet)
	b.cfg.Instances = append(b.cfg.Instances, in)
}

// optScript parses a keyword whose script is optional (notify_deleted).
func (b *builder) optScript(n *node) *Script {
	if len(n.args) == 0 {
		return &Script{Pos: n.pos()}
	}
	return b.script(n)
}

// finishInstance fills keepalived's defaults (keepalived-semantics.md §10.3).
func (b *builder) finishInstance(in *VRRPInstance, garpSet map[string]bool) {
	if !in.prioSet {
		in.Priority = 100
		if in.State == "MASTER" {
			in.Priority = 255
		}
	}
	if in.State == "" {
		in.State = "BACKUP"
		if in.Priority == 255 {
			in.State = "MASTER"
		}
	}
	if in.AdvertInt == 0 {
		in.AdvertInt = secs(1)
	}
	in.Family = "inet"
	for _, v := range in.VIPs {
		if v.Prefix.Addr().Is6() {
			in.Family = "inet6"
			break
		}
	}
	if len(in.VIPs) == 0 && in.UnicastSrcIP.Is6() {
		in.Family = "inet6"
	}
	if !in.acceptSet {
		in.Accept = true
	}
	_ = garpSet
}

func (b *builder) syncGroup(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	sg := &SyncGroup{Name: name.Text, Pos: n.pos()}
	where := "vrrp_sync_group " + sg.Name
	b.walk(n.children, where, map[string]handler{
		"group": func(n *node) {
			for _, e := range b.lines(n) {
				sg.Members = append(sg.Members, e.key.Text)
				for _, a := range e.args {
					sg.Members = append(sg.Members, a.Text)
				}
			}
		},
		"notify_master":              b.scriptArg(&sg.NotifyMaster),
		"notify_backup":              b.scriptArg(&sg.NotifyBackup),
		"notify_fault":               b.scriptArg(&sg.NotifyFault),
		"notify_stop":                b.scriptArg(&sg.NotifyStop),
		"notify":                     b.scriptArg(&sg.Notify),
		"track_script":               func(n *node) { sg.TrackScripts = append(sg.TrackScripts, b.trackRefs(n)...) },
		"track_interface":            func(n *node) { sg.TrackInterfaces = append(sg.TrackInterfaces, b.trackRefs(n)...) },
		"track_file":                 func(n *node) { sg.TrackFiles = append(sg.TrackFiles, b.trackRefs(n)...) },
		"sync_group_tracking_weight": b.setFlag(&sg.TrackingWeight),
		"smtp_alert":                 b.setFlag(&sg.SMTPAlert),
	}, "global_tracking", "track_process", "track_bfd", "notify_priority_changes")
	if len(sg.Members) == 0 {
		b.d.errorf(n.pos(), "sync group %s has no virtual router(s) - removing", sg.Name)
		return
	}
	b.cfg.SyncGroups = append(b.cfg.SyncGroups, sg)
}

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

type errorString string

func (e errorString) Error() string { return string(e) }

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
		"alpha":       b.setFlag(&d.Alpha),
		"virtualhost": func(n *node) { d.VirtualHost = b.str(n) },
	}
}

func merge(maps ...map[string]handler) map[string]handler {
	out := map[string]handler{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
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
	vs := &VirtualServer{Pos: n.pos(), Scheduler: "wlc", Method: "NAT", Protocol: "TCP", Quorum: 1}
	vs.Defaults = CheckerDefaults{DelayLoop: secs(60)}
	protoSet := false
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
		"lb_kind":    func(n *node) { b.vsMethod(n, vs) },
		"lvs_method": func(n *node) { b.vsMethod(n, vs) },
		"protocol": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			p := strings.ToUpper(t.Text)
			switch p {
			case "TCP", "UDP", "SCTP":
				vs.Protocol = p
				protoSet = true
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
		"quorum":                  func(n *node) { b.intRange(n, 0, math.MaxInt32, &vs.Quorum) },
		"hysteresis":              func(n *node) { b.intRange(n, 0, math.MaxInt32, &vs.Hysteresis) },
		"quorum_up":               b.scriptArg(&vs.QuorumUp),
		"quorum_down":             b.scriptArg(&vs.QuorumDown),
		"sorry_server": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			a, ok := b.addr(t, "sorry_server")
			if !ok {
				return
			}
			ss := &RealServer{Addr: a, Weight: 1, Pos: n.pos()}
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
			if t, ok := b.arg(n, 0); ok && vs.SorryServer != nil {
				if m, ok := b.method(t, "sorry_server"); ok {
					vs.SorryServer.Method = m
				}
			}
		},
		"inhibit_on_failure": b.setFlag(&vs.Inhibit),
		"omega":              b.setFlag(&vs.Omega),
		"ha_suspend":         b.setFlag(&vs.HASuspend),
		"ops":                b.setFlag(&vs.OPS),
		"real_server":        func(n *node) { b.realServer(n, vs) },
	}), "nat_mask", "smtp_alert", "lvs_timeouts", "lvs_flush", "lvs_flush_on_stop", "retry_on_failure",
		"quorum_up_down_notify", "delay_before_retry_on_failure", "log_all_failures")
	if vs.FWMark != 0 && protoSet {
		b.d.warnf(n.pos(), "protocol specified for fwmark - protocol will be ignored")
	}
	if vs.Port == 0 && vs.FWMark == 0 && vs.Group == "" && !persistenceSet {
		b.d.errorf(n.pos(), "virtual_server %s has no port; a port may be omitted only with persistence_timeout", vs.Addr)
	}
	b.resolveCheckers(vs)
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

func (b *builder) vsMethod(n *node, vs *VirtualServer) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	m, ok := b.method(t, "virtual_server")
	if !ok {
		return
	}
	vs.Method = m
	if m == "TUN" {
		vs.TunType = "ipip"
		for i := 1; i < len(n.args); i++ {
			switch n.args[i].Text {
			case "type":
				if i+1 < len(n.args) {
					i++
					vs.TunType = n.args[i].Text
				}
			}
		}
	}
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
	rs := &RealServer{Addr: a, Weight: 1, Pos: n.pos()}
	if len(n.args) > 1 {
		if p, ok := b.port(n.args[1], "real_server"); ok {
			rs.Port = p
		}
	}
	where := "real_server " + n.argText()
	checker := func(typ string) handler {
		return func(n *node) {
			if c := b.checker(n, typ, where); c != nil {
				rs.Checkers = append(rs.Checkers, c)
			}
		}
	}
	b.walk(n.children, where, merge(b.checkerOpts(&rs.Defaults), map[string]handler{
		"weight": func(n *node) { b.intRange(n, 0, 65535, &rs.Weight) },
		"inhibit_on_failure": func(n *node) {
			rs.Inhibit = b.flag(n)
			rs.inhibitSet = true
		},
		"notify_up":   b.scriptArg(&rs.NotifyUp),
		"notify_down": b.scriptArg(&rs.NotifyDown),
		"uthreshold":  func(n *node) { b.intRange(n, 0, math.MaxInt32, &rs.UThreshold) },
		"lthreshold":  func(n *node) { b.intRange(n, 0, math.MaxInt32, &rs.LThreshold) },
		"lvs_method": func(n *node) {
			if t, ok := b.arg(n, 0); ok {
				if m, ok := b.method(t, "real_server"); ok {
					rs.Method = m
				}
			}
		},
		"TCP_CHECK":  checker("TCP_CHECK"),
		"HTTP_GET":   checker("HTTP_GET"),
		"SSL_GET":    checker("SSL_GET"),
		"MISC_CHECK": checker("MISC_CHECK"),
		"PING_CHECK": checker("PING_CHECK"),
		"UDP_CHECK":  checker("UDP_CHECK"),
		"DNS_CHECK":  checker("DNS_CHECK"),
		"SMTP_CHECK": checker("SMTP_CHECK"),
	}), "BFD_CHECK", "FILE_CHECK", "smtp_alert", "log_all_failures")
	if !rs.inhibitSet {
		rs.Inhibit = vs.Inhibit
	}
	vs.Reals = append(vs.Reals, rs)
}

func (b *builder) checker(n *node, typ, where string) *Checker {
	c := &Checker{Type: typ, Pos: n.pos()}
	var d CheckerDefaults
	where = where + " " + typ
	h := b.checkerOpts(&d)
	h["connect_ip"] = b.addrArg(n, &c.ConnectIP)
	h["bindto"] = b.addrArg(n, &c.BindTo)
	h["bind_if"] = func(n *node) { c.BindIf = b.str(n) }
	h["connect_port"] = func(n *node) {
		if t, ok := b.arg(n, 0); ok {
			if p, ok := b.port(t, "connect_port"); ok {
				c.ConnectPort = p
			}
		}
	}
	h["bind_port"] = func(n *node) {
		if t, ok := b.arg(n, 0); ok {
			if p, ok := b.port(t, "bind_port"); ok {
				c.BindPort = p
			}
		}
	}
	h["fwmark"] = func(n *node) {
		v := 0
		if b.intRange(n, 0, math.MaxInt32, &v) {
			c.FWMark = uint32(v)
		}
	}
	h["log_all_failures"] = b.setFlag(&c.LogAllFailures)
	switch typ {
	case "HTTP_GET", "SSL_GET":
		h["url"] = func(n *node) {
			if u := b.url(n); u != nil {
				c.URLs = append(c.URLs, u)
			}
		}
		h["http_protocol"] = func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			switch t.Text {
			case "1.0", "1.0C", "1.1", "1.0c":
				c.HTTPProtocol = strings.ToUpper(t.Text)
			default:
				b.d.errorf(t.Pos, "http_protocol: %q is not 1.0, 1.0C or 1.1", t.Text)
			}
		}
		h["enable_sni"] = b.setFlag(&c.EnableSNI)
		h["sni_name"] = func(n *node) { c.SNIName = b.str(n) }
		h["fast_recovery"] = b.setFlag(&c.FastRecovery)
	case "MISC_CHECK":
		h["misc_path"] = b.scriptArg(&c.MiscPath)
		h["misc_timeout"] = func(n *node) { b.timer(n, 0.000001, 86400, &c.MiscTimeout) }
		h["misc_dynamic"] = b.setFlag(&c.MiscDynamic)
		h["user"] = func(n *node) {
			if c.MiscPath != nil {
				c.MiscPath.User = b.str(n)
				if len(n.args) > 1 {
					c.MiscPath.Group = n.args[1].Text
				}
			}
		}
	case "UDP_CHECK":
		h["payload"] = func(n *node) {
			p, err := parseHex(n.argText())
			if err != nil {
				b.d.errorf(n.pos(), "payload: %v", err)
				return
			}
			c.Payload = p
		}
		h["require_reply"] = func(n *node) {
			c.RequireReply = true
			c.ReplyPattern = strings.ReplaceAll(n.argText(), " ", "")
		}
		h["min_reply_length"] = func(n *node) { b.intRange(n, 0, 65535, &c.MinReplyLength) }
		h["max_reply_length"] = func(n *node) { b.intRange(n, 0, 65535, &c.MaxReplyLength) }
	case "DNS_CHECK":
		h["type"] = func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			up := strings.ToUpper(t.Text)
			switch up {
			case "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA":
				c.DNSType = up
			default:
				b.d.errorf(t.Pos, "DNS_CHECK type %q is not A, NS, CNAME, SOA, MX, TXT or AAAA", t.Text)
			}
		}
		h["name"] = func(n *node) { c.DNSName = b.str(n) }
	case "SMTP_CHECK":
		h["helo_name"] = func(n *node) { c.HeloName = b.str(n) }
		h["host"] = func(n *node) {
			b.d.notef(n.pos(), "SMTP_CHECK host { } is deprecated; its options apply to the checker")
			sub := b.checkerOpts(&d)
			sub["connect_ip"] = h["connect_ip"]
			sub["connect_port"] = h["connect_port"]
			sub["bindto"] = h["bindto"]
			sub["bind_port"] = h["bind_port"]
			sub["bind_if"] = h["bind_if"]
			sub["fwmark"] = h["fwmark"]
			b.walk(n.children, where+" host", sub)
		}
	}
	b.walk(n.children, where, h, "regex", "regex_no_match", "regex_options", "regex_min_offset",
		"regex_max_offset", "regex_stack", "dynamic", "tcp_keepalive")
	// Copy what was set on the checker itself; inheritance is resolved later.
	c.ConnectTimeout, c.ctSet = d.ConnectTimeout, d.ctSet
	c.Retry, c.retrySet = d.Retry, d.retrySet
	c.DelayBeforeRetry, c.dbrSet = d.DelayBeforeRetry, d.dbrSet
	c.DelayLoop, c.dlSet = d.DelayLoop, d.dlSet
	if d.Warmup != nil {
		c.Warmup, c.warmupSet = *d.Warmup, true
	}
	c.Alpha = d.Alpha
	if d.VirtualHost != "" {
		c.VirtualHost = d.VirtualHost
	}
	if typ == "MISC_CHECK" && c.MiscPath == nil {
		b.d.errorf(n.pos(), "MISC_CHECK has no misc_path")
		return nil
	}
	if (typ == "HTTP_GET" || typ == "SSL_GET") && len(c.URLs) == 0 {
		b.d.errorf(n.pos(), "%s has no url block", typ)
		return nil
	}
	return c
}

func (b *builder) url(n *node) *URL {
	u := &URL{Pos: n.pos()}
	b.walk(n.children, "url", map[string]handler{
		"path": func(n *node) { u.Path = b.str(n) },
		"digest": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			if _, err := hex.DecodeString(t.Text); err != nil || len(t.Text) != 32 {
				b.d.errorf(t.Pos, "digest %q is not 32 hex digits (an MD5 sum)", t.Text)
				return
			}
			u.Digest = strings.ToLower(t.Text)
		},
		"status_code": func(n *node) {
			for _, a := range n.args {
				lo, hi, found := strings.Cut(a.Text, "-")
				from, err1 := strconv.Atoi(lo)
				to := from
				var err2 error
				if found {
					to, err2 = strconv.Atoi(hi)
				}
				if err1 != nil || err2 != nil || from < 100 || to > 599 || to < from {
					b.d.errorf(a.Pos, "status_code %q is not a code or range within 100-599", a.Text)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, StatusRange{from, to})
			}
			if len(n.args) == 0 {
				b.arg(n, 0)
			}
		},
		"virtualhost": func(n *node) { u.VirtualHost = b.str(n) },
	}, "regex", "regex_no_match", "regex_options", "regex_min_offset", "regex_max_offset", "regex_stack")
	if u.Path == "" {
		b.d.errorf(n.pos(), "url has no path")
		return nil
	}
	if len(u.StatusCodes) == 0 {
		u.StatusCodes = []StatusRange{{200, 299}}
	}
	return u
}

// parseHex reads keepalived's loose hex: blank-separated groups read in
// pairs from the left, a lone last digit making a byte of its own
// ("Ab12f 3 456" = AB 12 0F 03 45 06).
func parseHex(s string) ([]byte, error) {
	var out []byte
	for _, g := range strings.Fields(s) {
		for i := 0; i < len(g); i += 2 {
			chunk := "0" + g[i:i+1]
			if i+1 < len(g) {
				chunk = g[i : i+2]
			}
			v, err := strconv.ParseUint(chunk, 16, 8)
			if err != nil {
				return nil, errorString("bad hex " + strconv.Quote(g))
			}
			out = append(out, byte(v))
		}
	}
	return out, nil
}

// resolveCheckers applies inheritance virtual_server → real_server →
// checker and keepalived's per-checker defaults.
func (b *builder) resolveCheckers(vs *VirtualServer) {
	for _, rs := range vs.Reals {
		rd := rs.Defaults
		if !rd.dlSet {
			rd.DelayLoop = vs.Defaults.DelayLoop
		}
		if !rd.ctSet {
			rd.ConnectTimeout, rd.ctSet = vs.Defaults.ConnectTimeout, vs.Defaults.ctSet
		}
		if !rd.retrySet {
			rd.Retry, rd.retrySet = vs.Defaults.Retry, vs.Defaults.retrySet
		}
		if !rd.dbrSet {
			rd.DelayBeforeRetry, rd.dbrSet = vs.Defaults.DelayBeforeRetry, vs.Defaults.dbrSet
		}
		if rd.Warmup == nil {
			rd.Warmup = vs.Defaults.Warmup
		}
		rd.Alpha = rd.Alpha || vs.Defaults.Alpha
		if rd.VirtualHost == "" {
			rd.VirtualHost = vs.Defaults.VirtualHost
		}
		rs.Defaults = rd
		for _, c := range rs.Checkers {
			if !c.dlSet {
				c.DelayLoop = rd.DelayLoop
			}
			if !c.ctSet {
				c.ConnectTimeout = rd.ConnectTimeout
				if !rd.ctSet {
					c.ConnectTimeout = secs(5)
				}
			}
			if !c.retrySet {
				c.Retry = rd.Retry
				if !rd.retrySet {
					switch c.Type {
					case "DNS_CHECK":
						c.Retry = 3
					case "MISC_CHECK":
						c.Retry = 0
					default:
						c.Retry = 1
					}
				}
			}
			if !c.dbrSet {
				c.DelayBeforeRetry = rd.DelayBeforeRetry
				if !rd.dbrSet {
					switch c.Type {
					case "HTTP_GET", "SSL_GET":
						c.DelayBeforeRetry = secs(3)
					case "DNS_CHECK":
						c.DelayBeforeRetry = c.DelayLoop
					default:
						c.DelayBeforeRetry = secs(1)
					}
				}
			}
			if !c.warmupSet {
				// keepalived's default warmup is a random 0..delay_loop; the
				// model records the bound and the scheduler draws the jitter.
				c.Warmup = c.DelayLoop
				if rd.Warmup != nil {
					c.Warmup = *rd.Warmup
				}
			}
			c.Alpha = c.Alpha || rd.Alpha
			if c.VirtualHost == "" {
				c.VirtualHost = rd.VirtualHost
			}
			if c.Type == "MISC_CHECK" && c.MiscTimeout == 0 {
				c.MiscTimeout = c.DelayLoop
			}
			if c.Type == "DNS_CHECK" {
				if c.DNSType == "" {
					c.DNSType = "SOA"
				}
				if c.DNSName == "" {
					c.DNSName = "."
				}
			}
			if c.Type == "UDP_CHECK" && c.MaxReplyLength == 0 {
				c.MaxReplyLength = 255
			}
			if (c.Type == "HTTP_GET" || c.Type == "SSL_GET") && c.HTTPProtocol == "" {
				c.HTTPProtocol = "1.0"
			}
		}
	}
}

func (b *builder) dataplane(n *node) {
	dp := &b.cfg.Dataplane
	dp.Pos = n.pos()
	b.walk(n.children, "dataplane", map[string]handler{
		"backend": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			switch t.Text {
			case "xdp", "ipvs", "none":
				dp.Backend = t.Text
			default:
				b.d.errorf(t.Pos, "dataplane backend %q is not xdp, ipvs or none", t.Text)
			}
		},
		"interface": func(n *node) {
			if len(n.args) == 0 {
				b.arg(n, 0)
			}
			for _, a := range n.args {
				if len(a.Text) > 15 {
					b.d.errorf(a.Pos, "interface name %q is longer than 15 characters", a.Text)
					continue
				}
				dp.Interfaces = append(dp.Interfaces, a.Text)
			}
		},
		"xdp_mode": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			switch t.Text {
			case "native", "generic", "auto":
				dp.XDPMode = t.Text
			default:
				b.d.errorf(t.Pos, "xdp_mode %q is not native, generic or auto", t.Text)
			}
		},
	})
	if dp.Backend == "xdp" && len(dp.Interfaces) == 0 {
		b.d.errorf(n.pos(), "dataplane backend xdp needs at least one interface")
	}
}
