package vrrpd

import (
	"fmt"
	"log/slog"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/vip"
)

// routeSet is an instance's virtual_routes and virtual_rules (or the
// static_* ones): added with the VIPs, removed with them.
type routeSet struct {
	routes []vip.Route
	rules  []vip.Rule
}

func makeRoutes(rs []*config.Route, rules []*config.Rule, dev string) (routeSet, error) {
	var out routeSet
	for _, r := range rs {
		x, err := vip.ParseRoute(r.Words, dev)
		if err != nil {
			return out, fmt.Errorf("%s: %w", r.Pos, err)
		}
		out.routes = append(out.routes, x)
	}
	for _, r := range rules {
		x, err := vip.ParseRule(r.Words)
		if err != nil {
			return out, fmt.Errorf("%s: %w", r.Pos, err)
		}
		out.rules = append(out.rules, x)
	}
	return out, nil
}

// add installs rules after routes, as keepalived does.
func (s routeSet) add(log *slog.Logger) {
	for _, r := range s.routes {
		if err := vip.AddRoute(r); err != nil {
			log.Error("add route", "err", err)
		}
	}
	for _, r := range s.rules {
		if err := vip.AddRule(r); err != nil {
			log.Error("add rule", "err", err)
		}
	}
}

func (s routeSet) del(log *slog.Logger) {
	for _, r := range s.rules {
		if err := vip.DelRule(r); err != nil {
			log.Error("remove rule", "err", err)
		}
	}
	for _, r := range s.routes {
		if err := vip.DelRoute(r); err != nil {
			log.Error("remove route", "err", err)
		}
	}
}
