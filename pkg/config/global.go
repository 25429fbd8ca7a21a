package config

import (
	"math"
	"strconv"
)

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
	b.walk(n.children, "global_defs", merge(b.garpKeywords(&g.GARP, "vrrp_", ""), b.firewallKeywords(&g.Firewall), map[string]handler{
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
		"smtp_connect_timeout": func(n *node) {
			if b.timer(n, 0, 3600, &g.SMTPConnectTimeout) && g.SMTPConnectTimeout == 0 {
				b.d.warnf(n.args[0].Pos, "smtp_connect_timeout must be greater than 0, setting to 1")
				g.SMTPConnectTimeout = secs(1)
			}
		},
		"smtp_alert": b.setFlag(&g.SMTPAlert),
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
		"vrrp_version":       func(n *node) { b.intRange(n, 2, 3, &g.VRRPVersion) },
		"vrrp_strict":        b.setFlag(&g.VRRPStrict),
		"vrrp_garp_interval": b.garpInterval(&g.GARP.Interval),
		"vrrp_gna_interval":  b.garpInterval(&g.GARP.GNAInterval),
		"vrrp_min_garp": func(n *node) {
			if b.flag(n) {
				b.minGARP(&g.GARP)
			}
		},
		"vrrp_skip_check_adv_addr": b.setFlag(&g.SkipCheckAdvAddr),
		"vrrp_check_unicast_src":   b.setFlag(&g.CheckUnicastSrc),
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
		"vrrp_notify_priority_changes": b.setFlag(&g.NotifyPriorityChanges),
		"checker_log_all_failures":     b.setFlag(&g.CheckerLogAllFailures),
	}), "router_id_from_hostname", "max_auto_priority", "vrrp_no_swap",
		"checker_no_swap", "bfd_no_swap", "vrrp_priority", "checker_priority", "bfd_priority", "vrrp_rt_priority",
		"checker_rt_priority", "bfd_rt_priority", "vrrp_cpu_affinity", "checker_cpu_affinity", "snmp_socket",
		"enable_snmp_vrrp", "enable_snmp_checker", "enable_snmp_rfc", "enable_snmp_rfcv2", "enable_snmp_rfcv3",
		"enable_traps", "enable_dbus", "dynamic_interfaces", "lvs_timeouts", "lvs_flush", "lvs_sync_daemon",
		"vrrp_rx_bufs_policy",
		"vrrp_rx_bufs_multiplier", "vrrp_netlink_cmd_rcv_bufs", "vrrp_netlink_monitor_rcv_bufs",
		"umask", "fifo_write_vrrp_states_on_reload", "notify_fifo_user",
		"vrrp_garp_extra_if", "vrrp_gna_extra_if", "process_names", "process_name", "vrrp_process_name",
		"checker_process_name", "bfd_process_name", "linkbeat_use_polling", "local_name", "no_email_faults",
		"vrrp_startup_delay_log", "random_seed", "reload_check_config", "reload_time_file", "reload_repeat",
		"reload_file", "config_save_dir", "tmp_config_directory", "data_use_instance", "vrrp_track_process_dump",
		"vrrp_log_unknown_vrids", "log_unknown_vrids", "vrrp_use_process_cmdline", "vrrp_use_process_comm",
		"vrrp_skip_check_adv_addr_off", "script_security")
}

// garpKeywords returns the handlers of the GARP/NA timing keywords, shared by
// global_defs (prefix "vrrp_") and vrrp_instance (no prefix; who names the
// instance in messages). keepalived reads the delays and the refresh as
// whole seconds, turns a master or refresh repeat of 0 into 1 (saying so)
// and allows 0 for the lower-priority burst; a 0 delay means no second
// burst (docs/keepalived.md#garp-timing).
func (b *builder) garpKeywords(g *GARP, prefix, who string) map[string]handler {
	const maxDelay = math.MaxUint32 / 1000000 // keepalived: UINT_MAX / TIMER_HZ
	seconds := func(dst *Duration, hi uint64) handler {
		return func(n *node) {
			if v, ok := b.uintArg(n, who+n.key.Text, 0, hi); ok {
				*dst = secs(float64(v))
				b.mark(dst)
			}
		}
	}
	repeat := func(dst *int, zeroIsOne bool, hi uint64) handler {
		return func(n *node) {
			v, ok := b.uintArg(n, who+n.key.Text, 0, hi)
			if !ok {
				return
			}
			if v == 0 && zeroIsOne {
				b.d.warnf(n.args[0].Pos, "%s%s must be greater than 0, setting to 1", who, n.key.Text)
				v = 1
			}
			*dst = int(v)
			b.mark(dst)
		}
	}
	return map[string]handler{
		prefix + "garp_master_delay":          seconds(&g.MasterDelay, maxDelay),
		prefix + "garp_master_repeat":         repeat(&g.MasterRepeat, true, math.MaxUint32),
		prefix + "garp_master_refresh":        seconds(&g.MasterRefresh, math.MaxUint32),
		prefix + "garp_master_refresh_repeat": repeat(&g.MasterRefreshRepeat, true, math.MaxUint32),
		prefix + "garp_lower_prio_delay":      seconds(&g.LowerPrioDelay, maxDelay),
		prefix + "garp_lower_prio_repeat":     repeat(&g.LowerPrioRepeat, false, math.MaxInt32),
	}
}

// garpInterval reads vrrp_garp_interval / vrrp_gna_interval: 1 µs up to
// UINT_MAX µs, as keepalived; a second or more is legal but noted.
func (b *builder) garpInterval(dst *Duration) handler {
	return func(n *node) {
		t, ok := b.arg(n, 0)
		if !ok {
			return
		}
		v, err := strconv.ParseFloat(t.Text, 64)
		if err != nil || math.IsNaN(v) || v < 0.000001 || v > 4294.967295 {
			b.d.warnf(t.Pos, "%s '%s' is invalid", n.key.Text, t.Text)
			return
		}
		if v >= 1 {
			b.d.notef(t.Pos, "The %s is very large - %s seconds", n.key.Text, t.Text)
		}
		*dst = secs(v)
		b.mark(dst)
	}
}

// minGARP is vrrp_min_garp: one GARP/NA and no second burst. Like
// keepalived it changes only the values that are still at their default
// when the keyword is read (so a later vrrp_garp_* line still wins), and
// that includes keepalived's quirk of setting the refresh repeat to 0.
func (b *builder) minGARP(g *GARP) {
	g.MinGARP = true
	b.mark(&g.MinGARP)
	if !b.given(&g.MasterRepeat) || g.MasterRepeat == defGARPRepeat {
		g.MasterRepeat = 1
		b.mark(&g.MasterRepeat)
	}
	if !b.given(&g.MasterRefreshRepeat) || g.MasterRefreshRepeat == defGARPRefreshRepeat {
		g.MasterRefreshRepeat = 0
		b.mark(&g.MasterRefreshRepeat)
	}
	if !b.given(&g.MasterDelay) || g.MasterDelay == defGARPDelay {
		g.MasterDelay = 0
		b.mark(&g.MasterDelay)
	}
}
