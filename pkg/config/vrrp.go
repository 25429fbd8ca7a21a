package config

import (
	"math"
	"strconv"
)

func (b *builder) vrrpScript(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	s := &VRRPScript{Name: name.Text, Pos: n.pos()}
	b.walk(n.children, "vrrp_script "+name.Text, map[string]handler{
		"script": func(n *node) { s.Script = b.script(n) },
		// keepalived 2.2.7 reads interval and timeout as whole seconds and
		// rise/fall from 1 up; a bad value is reported and the default kept.
		"interval": func(n *node) {
			t, ok := b.arg(n, 0)
			if !ok {
				return
			}
			if v, err := strconv.ParseUint(t.Text, 10, 32); err != nil || v < 1 || v > 4294 {
				b.d.warnf(t.Pos, "(%s): vrrp script interval '%s' must be between 1 and 4294 - ignoring", s.Name, t.Text)
			} else {
				s.Interval = secs(float64(v))
				b.mark(&s.Interval)
			}
		},
		"timeout": func(n *node) {
			if v, ok := b.uintArg(n, "("+s.Name+"): vrrp script timeout", 1, 4294); ok {
				s.Timeout = secs(float64(v))
				b.mark(&s.Timeout)
			}
		},
		"weight": func(n *node) {
			b.intRange(n, -253, 253, &s.Weight)
			if len(n.args) > 1 && n.args[1].Text == "reverse" {
				s.Reverse = true
			}
		},
		"rise": func(n *node) { b.scriptCount(n, s.Name, "rise", &s.Rise) },
		"fall": func(n *node) { b.scriptCount(n, s.Name, "fall", &s.Fall) },
		"user": func(n *node) {
			if s.Script != nil {
				s.Script.User = b.str(n)
			}
		},
		"init_fail": b.setFlag(&s.InitFail),
	})
	if s.Script == nil {
		b.d.errorf(n.pos(), "no script set for vrrp_script %s - removing", s.Name)
		return
	}
	b.cfg.Scripts = append(b.cfg.Scripts, s)
}

// scriptCount reads a vrrp_script rise or fall (1..2147483647); keepalived
// turns a bad one into the default 1 with a message.
func (b *builder) scriptCount(n *node, name, what string, dst *int) {
	t, ok := b.arg(n, 0)
	if !ok {
		return
	}
	v, err := strconv.ParseUint(t.Text, 10, 31)
	if err != nil || v < 1 {
		b.d.warnf(t.Pos, "(%s): vrrp script %s value '%s' invalid, defaulting to 1", name, what, t.Text)
		return
	}
	*dst = int(v)
	b.mark(dst)
}

func (b *builder) trackFile(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	tf := &TrackFile{Name: name.Text, Pos: n.pos()}
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

func (b *builder) instance(n *node) {
	name, ok := b.arg(n, 0)
	if !ok {
		return
	}
	in := &VRRPInstance{Name: name.Text, Pos: n.pos()}
	where := "vrrp_instance " + in.Name
	b.walk(n.children, where, merge(b.garpKeywords(&in.GARP, "", "("+in.Name+"): "), map[string]handler{
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
				b.mark(&in.State)
			default:
				b.d.warnf(t.Pos, "(%s) unknown state '%s', defaulting to BACKUP", in.Name, t.Text)
			}
		},
		"interface": func(n *node) { in.Interface = b.str(n) },
		"virtual_router_id": func(n *node) {
			b.mark(&in.VRID) // even when invalid: the error is the range, not "missing"
			b.intRange(n, 1, 255, &in.VRID)
		},
		"priority": func(n *node) {
			b.intRange(n, 1, 255, &in.Priority)
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
					in.AuthPass = Secret(t.Text)
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
		"vmac_xmit_base":          b.setFlag(&in.VMACXmitBase),
		"accept":                  func(n *node) { in.Accept = b.flag(n); b.mark(&in.Accept) },
		"no_accept":               func(n *node) { in.Accept = !b.flag(n); b.mark(&in.Accept) },
		"strict_mode":             b.setFlag(&in.StrictMode),
		"dont_track_primary":      b.setFlag(&in.DontTrackPrimary),
		"skip_check_adv_addr":     b.setFlag(&in.SkipCheckAdvAddr),
		"check_unicast_src":       b.setFlag(&in.CheckUnicastSrc),
		"lower_prio_no_advert":    b.setFlag(&in.LowerPrioNoAdvert),
		"higher_prio_send_advert": b.setFlag(&in.HigherPrioSendAdvert),
		"v3_checksum_as_v2":       b.setFlag(&in.V3ChecksumAsV2),
		"smtp_alert":              b.setFlag(&in.SMTPAlert),
		"lvs_sync_daemon_interface": func(n *node) {
			b.d.notef(n.pos(), "lvs_sync_daemon_interface in a vrrp_instance is deprecated and not used by halo")
		},
	}), "debug", "native_ipv6", "unicast_fault_no_peer", "old_unicast_checksum", "kernel_rx_buf_size",
		"track_src_ip", "track_process", "track_bfd", "linkbeat_use_polling", "notify_priority_changes",
		"virtual_rules_excluded", "garp_extra_if", "vmac_garp_intvl", "nftables_ifindex")
	b.cfg.Instances = append(b.cfg.Instances, in)
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
