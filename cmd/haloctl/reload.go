package main

import (
	"fmt"
	"io"

	"github.com/halo-lb/halo/pkg/control"
)

var reloadVerb = verb{name: "reload", usage: "reload",
	help: "reload the config; exits 1 with the diagnostics if halod refused it", run: runReload}

func runReload(c *control.Client, args []string, stdout, stderr io.Writer) int {
	if err := subFlags("reload", stderr).Parse(args); err != nil || len(args) > 0 {
		return 2
	}
	res, err := c.Reload()
	if err != nil {
		fmt.Fprintln(stderr, "haloctl:", err)
		return 1
	}
	for _, d := range res.Diagnostics {
		fmt.Fprintln(stderr, d)
	}
	if !res.OK {
		fmt.Fprintln(stderr, "haloctl: reload refused, the running configuration stays:", res.Error)
		return 1
	}
	fmt.Fprintln(stdout, "reloaded:", res.Summary)
	return 0
}
