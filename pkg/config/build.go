package config

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
		"bgp":           func(n *node) { b.bgp(n) },
	}, "vrrp_track_process", "track_group", "garp_group", "linkbeat_interfaces", "interface_up_down_delays",
		"bfd_instance", "SSL", "net_namespace", "net_namespace_ipvs", "namespace_with_ipsets", "instance",
		"use_pid_dir", "child_wait_time", "linkbeat_use_polling")
}
