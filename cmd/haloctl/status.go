package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
)

var statusVerb = verb{name: "status", usage: "status [--json]",
	help: "VRRP instances and virtual servers, as tables or JSON", run: runStatus}

func runStatus(c *control.Client, args []string, stdout, stderr io.Writer) int {
	fs := subFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	st, raw, err := c.Status()
	if err != nil {
		fmt.Fprintln(stderr, "haloctl:", err)
		return 1
	}
	if *asJSON {
		stdout.Write(raw)
		return 0
	}
	printStatus(stdout, st)
	return 0
}

func printStatus(w io.Writer, st *api.Status) {
	cfg := "last reload ok"
	if !st.Config.LastReloadSuccessful {
		cfg = "LAST RELOAD FAILED: " + st.Config.LastReloadError
	}
	fmt.Fprintf(w, "halod %s pid %d, data plane %s, %s (%d reloads)\n\n", st.Version, st.PID, st.Dataplane, cfg, st.Config.Reloads)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VRRP\tVRID\tINTERFACE\tSTATE\tPRIO\tEFFECTIVE\tVIPS")
	for _, v := range st.VRRP {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\n", v.Name, v.VRID, v.Interface, v.State, v.Priority,
			v.EffectivePriority, strings.Join(v.VIPs, ","))
	}
	tw.Flush()
	printBGP(w, st.BGP)
	if len(st.VirtualServers) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIRTUAL SERVER\tSCHED\tMETHOD\tREAL SERVER\tWEIGHT\tSTATE\tPACKETS\tBYTES\tLAST ERROR\tDATA PLANE")
	for _, vs := range st.VirtualServers {
		name := vs.ID
		if !vs.QuorumUp {
			name += " (quorum lost)"
		}
		for i, r := range vs.Reals {
			state := "down"
			if r.Up {
				state = "up"
			}
			if r.Drained {
				state += ",drained"
			}
			first := name
			if i > 0 {
				first = ""
			}
			dp := r.DataplaneState
			if dp == "" {
				dp = "-"
			}
			pkts, bytes := "-", "-"
			if r.Counters != nil {
				pkts, bytes = fmt.Sprint(r.Counters.Packets), fmt.Sprint(r.Counters.Bytes)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d\t%d\t%s\t%s\t%s\t%s\t%s\n", first, vs.Scheduler, vs.Method, r.Address, r.Port, r.Weight,
				state, pkts, bytes, r.LastError, dp)
		}
	}
	tw.Flush()
	if len(st.Skipped) > 0 {
		fmt.Fprintln(w, "\nSkipped by the data plane (every other service is applied):")
		for _, s := range st.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.Service, s.Reason)
		}
	}
}
