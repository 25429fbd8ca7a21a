package config

import (
	"math"
	"slices"
	"strings"
)

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
		"xdp_mode":            b.oneOf(&dp.XDPMode, "native", "generic", "auto"),
		"flow_table_size":     func(n *node) { b.intRange(n, 1024, 1<<27, &dp.FlowTableSize) },
		"tcp_timeout":         b.wholeSeconds(&dp.TCPTimeout),
		"tcp_fin_timeout":     b.wholeSeconds(&dp.TCPFinTimeout),
		"udp_timeout":         b.wholeSeconds(&dp.UDPTimeout),
		"syn_flood_threshold": func(n *node) { b.intRange(n, 0, math.MaxInt32, &dp.SYNFloodThreshold) },
		"max_services":        func(n *node) { b.intRange(n, 1, 1<<16, &dp.MaxServices) },
		"flow_tracking":       b.oneOf(&dp.FlowTracking, "on_change", "always"),
		"selection_hash":      b.oneOf(&dp.SelectionHash, "murmur3", "mix32"),
		"max_reals":           func(n *node) { b.intRange(n, 1, 1<<20, &dp.MaxReals) },
	})
	if dp.Backend == "ipvs" {
		for _, c := range n.children {
			switch c.key.Text {
			case "flow_table_size", "tcp_timeout", "tcp_fin_timeout", "udp_timeout", "syn_flood_threshold", "max_services", "max_reals", "flow_tracking", "selection_hash":
				b.d.notef(c.pos(), "%s is used by the xdp backend only (IPVS: ipvsadm --set)", c.key.Text)
			}
		}
	}
	if dp.Backend == "xdp" && len(dp.Interfaces) == 0 {
		b.d.errorf(n.pos(), "dataplane backend xdp needs at least one interface")
	}
}

// oneOf reads a keyword whose one argument is one of values.
func (b *builder) oneOf(dst *string, values ...string) handler {
	return func(n *node) {
		t, ok := b.arg(n, 0)
		if !ok {
			return
		}
		if !slices.Contains(values, t.Text) {
			b.d.errorf(t.Pos, "%s %q is not %s or %s", n.key.Text, t.Text,
				strings.Join(values[:len(values)-1], ", "), values[len(values)-1])
			return
		}
		*dst = t.Text
	}
}

// wholeSeconds reads a timeout in whole seconds, 1 up to IPVS's largest
// (INT_MAX / HZ ≈ 24 days at HZ=1000; halo takes 2147483).
func (b *builder) wholeSeconds(dst *Duration) handler {
	return func(n *node) {
		v := 0
		if b.intRange(n, 1, 2147483, &v) {
			*dst = secs(float64(v))
			b.mark(dst)
		}
	}
}
