package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
)

var drainVerb = verb{name: "drain", usage: "drain [--undo]",
	help: "withdraw every BGP route (maintenance); forwarding goes on. --undo announces again", run: runDrain}

func runDrain(c *control.Client, args []string, stdout, stderr io.Writer) int {
	fs := subFlags("drain", stderr)
	undo := fs.Bool("undo", false, "announce the routes again")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	if err := c.BGPDrain(!*undo); err != nil {
		fmt.Fprintln(stderr, "haloctl:", err)
		return 1
	}
	if *undo {
		fmt.Fprintln(stdout, "bgp: announcing again")
	} else {
		fmt.Fprintln(stdout, "bgp: drained, every route withdrawn")
	}
	return 0
}

// printBGP adds the BGP sessions and announcements to `haloctl status`.
func printBGP(w io.Writer, b *api.BGP) {
	if b == nil {
		return
	}
	drained := ""
	if b.Drained {
		drained = ", DRAINED"
	}
	fmt.Fprintf(w, "\nBGP AS %d router id %s%s; announced: %s\n", b.LocalAS, b.RouterID, drained, strings.Join(b.Announced, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tAS\tSTATE\tHOLD\tUPDATES SENT\tMD5")
	for _, p := range b.Peers {
		md5 := ""
		if p.MD5 {
			md5 = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", p.Address, p.RemoteAS, p.State, p.HoldTime, p.UpdatesSent, md5)
	}
	tw.Flush()
}
