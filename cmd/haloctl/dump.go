package main

import (
	"fmt"
	"io"

	"github.com/halo-lb/halo/pkg/control"
)

var dumpVerb = verb{name: "dump", usage: "dump",
	help: "full state as JSON: instances, checkers, data-plane counters", run: runDump}

func runDump(c *control.Client, args []string, stdout, stderr io.Writer) int {
	if err := subFlags("dump", stderr).Parse(args); err != nil || len(args) > 0 {
		return 2
	}
	_, raw, err := c.Dump()
	if err != nil {
		fmt.Fprintln(stderr, "haloctl:", err)
		return 1
	}
	stdout.Write(raw)
	return 0
}
