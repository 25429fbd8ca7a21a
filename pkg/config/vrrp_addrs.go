package config

import (
	"net/netip"
	"strconv"
	"strings"
)

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
			if v.PreferredLft != "" && v.PreferredLft != "forever" {
				if _, err := strconv.ParseUint(v.PreferredLft, 10, 32); err != nil {
					b.d.errorf(e.args[i].Pos, "preferred_lft %q: want seconds or forever", v.PreferredLft)
				}
			}
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
			case "preference", "pref", "priority":
				i++
				v, err := strconv.ParseUint(toks[i].Text, 10, 32)
				if err != nil {
					b.d.errorf(toks[i].Pos, "invalid rule %s %q", w, toks[i].Text)
					continue
				}
				r.Priority = int(v)
				b.mark(&r.Priority)
			}
		}
		if !b.given(&r.Priority) {
			// keepalived 2.2.7 does the same, with this warning: without a
			// priority the kernel would put every rule at the top.
			b.d.warnf(e.pos(), "Rule has no preference specified - setting to %d. This is probably not what you want.", defRulePriority)
			r.Priority = defRulePriority
		}
		out = append(out, r)
	}
	return out
}
