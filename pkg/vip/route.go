package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route is one virtual_routes / static_routes entry, parsed from the `ip
// route` words keepalived accepts.
type Route struct {
	Dst      netip.Prefix
	Src      netip.Addr
	Via      netip.Addr
	Dev      string
	Table    int
	Metric   int
	Scope    int
	Protocol int
	Type     int // unix.RTN_*
	Words    []string
}

// ParseRoute reads `[src ADDR] [to] PREFIX [via|gw ADDR] [dev IF] [table N]
// [metric|preference|priority N] [scope S] [proto N] [no_track]`, with an
// optional leading type (blackhole, unreachable, prohibit, throw).
// defaultDev is used when the entry names neither dev nor via.
func ParseRoute(words []string, defaultDev string) (Route, error) {
	r := Route{Type: unix.RTN_UNICAST, Scope: -1, Words: words}
	next := func(i *int) (string, error) {
		*i++
		if *i >= len(words) {
			return "", fmt.Errorf("%s needs a value", words[*i-1])
		}
		return words[*i], nil
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		var v string
		var err error
		switch w {
		case "blackhole", "unreachable", "prohibit", "throw":
			r.Type = map[string]int{"blackhole": unix.RTN_BLACKHOLE, "unreachable": unix.RTN_UNREACHABLE,
				"prohibit": unix.RTN_PROHIBIT, "throw": unix.RTN_THROW}[w]
			continue
		case "no_track", "onlink":
			continue
		case "to":
			continue
		case "src", "via", "gw", "dev", "oif", "table", "metric", "preference", "priority", "scope", "proto", "protocol":
			if v, err = next(&i); err != nil {
				return r, err
			}
		default:
			p, err := parsePrefix(w)
			if err != nil || r.Dst.IsValid() {
				return r, fmt.Errorf("route: unexpected %q", w)
			}
			r.Dst = p
			continue
		}
		switch w {
		case "src":
			r.Src, err = netip.ParseAddr(v)
		case "via", "gw":
			r.Via, err = netip.ParseAddr(v)
		case "dev", "oif":
			r.Dev = v
		case "table":
			r.Table, err = tableID(v)
		case "metric", "preference", "priority":
			r.Metric, err = strconv.Atoi(v)
		case "scope":
			r.Scope, err = scopeID(v)
		case "proto", "protocol":
			r.Protocol, err = strconv.Atoi(v)
		}
		if err != nil {
			return r, fmt.Errorf("route %s %q: %w", w, v, err)
		}
	}
	if !r.Dst.IsValid() {
		return r, errors.New("route: no destination")
	}
	if r.Dev == "" && !r.Via.IsValid() && r.Type == unix.RTN_UNICAST {
		r.Dev = defaultDev
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	switch s {
	case "default":
		return netip.MustParsePrefix("0.0.0.0/0"), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func tableID(s string) (int, error) {
	switch s {
	case "main":
		return unix.RT_TABLE_MAIN, nil
	case "local":
		return unix.RT_TABLE_LOCAL, nil
	case "default":
		return unix.RT_TABLE_DEFAULT, nil
	}
	return strconv.Atoi(s)
}

func scopeID(s string) (int, error) {
	switch s {
	case "global", "universe":
		return unix.RT_SCOPE_UNIVERSE, nil
	case "site":
		return unix.RT_SCOPE_SITE, nil
	case "link":
		return unix.RT_SCOPE_LINK, nil
	case "host":
		return unix.RT_SCOPE_HOST, nil
	case "nowhere":
		return unix.RT_SCOPE_NOWHERE, nil
	}
	return strconv.Atoi(s)
}

func (r Route) String() string { return fmt.Sprint(r.Words) }

func (r Route) netlink() (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Table:    r.Table,
		Priority: r.Metric,
		Type:     r.Type,
		Protocol: netlink.RouteProtocol(r.Protocol),
	}
	if r.Dev != "" {
		l, err := netlink.LinkByName(r.Dev)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	// Without `scope`, the route is global even with no gateway: that is
	// what keepalived installs (the differential tests compare it).
	if r.Scope >= 0 {
		nr.Scope = netlink.Scope(r.Scope)
	}
	if r.Dst.Addr().Is6() {
		nr.Family = netlink.FAMILY_V6
	} else {
		nr.Family = netlink.FAMILY_V4
	}
	return nr, nil
}

// AddRoute installs the route; one already there is not an error.
func AddRoute(r Route) error {
	nr, err := r.netlink()
	if err != nil {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	if err := netlink.RouteAdd(nr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add route %s: %w", r, err)
	}
	return nil
}

// DelRoute removes the route; one already gone is not an error.
func DelRoute(r Route) error {
	nr, err := r.netlink()
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		return fmt.Errorf("del route %s: %w", r, err)
	}
	if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("del route %s: %w", r, err)
	}
	return nil
}

// Rule is one virtual_rules / static_rules entry.
type Rule struct {
	From, To netip.Prefix
	Table    int
	Priority int
	IIF, OIF string
	Mark     int
	Family   int
	Words    []string
}

// ParseRule reads `[from P] [to P] [table N] [priority|preference N] [iif
// IF] [oif IF] [fwmark N]`.
func ParseRule(words []string) (Rule, error) {
	r := Rule{Priority: -1, Mark: -1, Words: words}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "no_track" {
			continue
		}
		if i+1 >= len(words) {
			return r, fmt.Errorf("rule: %q needs a value", w)
		}
		i++
		v := words[i]
		var err error
		switch w {
		case "from":
			r.From, err = parsePrefix(v)
		case "to":
			r.To, err = parsePrefix(v)
		case "table", "lookup":
			r.Table, err = tableID(v)
		case "priority", "preference", "pref":
			r.Priority, err = strconv.Atoi(v)
		case "iif":
			r.IIF = v
		case "oif":
			r.OIF = v
		case "fwmark":
			var n int64
			n, err = strconv.ParseInt(v, 0, 64)
			r.Mark = int(n)
		default:
			return r, fmt.Errorf("rule: unexpected %q", w)
		}
		if err != nil {
			return r, fmt.Errorf("rule %s %q: %w", w, v, err)
		}
	}
	r.Family = netlink.FAMILY_V4
	if (r.From.IsValid() && r.From.Addr().Is6()) || (r.To.IsValid() && r.To.Addr().Is6()) {
		r.Family = netlink.FAMILY_V6
	}
	return r, nil
}

func (r Rule) String() string { return fmt.Sprint(r.Words) }

func (r Rule) netlink() *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = r.Family
	nr.Table = r.Table
	nr.Priority = r.Priority
	nr.IifName, nr.OifName = r.IIF, r.OIF
	if r.Mark >= 0 {
		m := uint32(r.Mark)
		nr.Mark = m
	}
	if r.From.IsValid() {
		nr.Src = &net.IPNet{IP: r.From.Addr().AsSlice(), Mask: net.CIDRMask(r.From.Bits(), r.From.Addr().BitLen())}
	}
	if r.To.IsValid() {
		nr.Dst = &net.IPNet{IP: r.To.Addr().AsSlice(), Mask: net.CIDRMask(r.To.Bits(), r.To.Addr().BitLen())}
	}
	return nr
}

// AddRule installs the rule; one already there is not an error.
func AddRule(r Rule) error {
	if err := netlink.RuleAdd(r.netlink()); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add rule %s: %w", r, err)
	}
	return nil
}

// DelRule removes the rule; one already gone is not an error.
func DelRule(r Rule) error {
	if err := netlink.RuleDel(r.netlink()); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("del rule %s: %w", r, err)
	}
	return nil
}
