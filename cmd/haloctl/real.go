package main

import (
	"fmt"
	"io"

	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
)

var realVerb = verb{name: "real", usage: "real disable|enable [--proto tcp|udp] VS RS",
	help: "drain a real server (weight 0) or restore its weight; VS is ADDR:PORT or fwmark:N, RS is ADDR:PORT", run: runReal}

func runReal(c *control.Client, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "disable" && args[0] != "enable") {
		fmt.Fprintln(stderr, "usage: haloctl real disable|enable [--proto tcp|udp] VS RS")
		return 2
	}
	fs := subFlags("real "+args[0], stderr)
	proto := fs.String("proto", "tcp", "protocol of the virtual server: tcp, udp or sctp")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(stderr, "usage: haloctl real disable|enable [--proto tcp|udp] VS RS")
		return 2
	}
	req := api.DrainRequest{VirtualServer: fs.Arg(0), Protocol: *proto, Real: fs.Arg(1), Drain: args[0] == "disable"}
	if err := c.Drain(req); err != nil {
		fmt.Fprintln(stderr, "haloctl:", err)
		return 1
	}
	what := "enabled"
	if req.Drain {
		what = "disabled (weight 0, established flows continue)"
	}
	fmt.Fprintf(stdout, "%s %s: %s\n", req.VirtualServer, req.Real, what)
	return 0
}
