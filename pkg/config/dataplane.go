package config

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
