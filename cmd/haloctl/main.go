// Command haloctl talks to a running halod over its control socket.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/halo-lb/halo/pkg/control"
)

var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: haloctl [--control PATH] COMMAND

commands:
  status [--json]   VRRP instances and virtual servers, as a table or JSON
  version           print the version
`

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("haloctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	path := fs.String("control", "/run/halo/halod.sock", "halod's control socket")
	if err := fs.Parse(args); err == flag.ErrHelp {
		return 0
	} else if err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	switch cmd := fs.Arg(0); cmd {
	case "version":
		fmt.Fprintln(stdout, "haloctl", version)
		return 0
	case "status":
		sfs := flag.NewFlagSet("status", flag.ContinueOnError)
		sfs.SetOutput(stderr)
		asJSON := sfs.Bool("json", false, "print JSON")
		if err := sfs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
		st, raw, err := control.NewClient(*path).Status()
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
	default:
		fmt.Fprintf(stderr, "haloctl: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
}

func printStatus(w io.Writer, st *control.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VRRP\tVRID\tINTERFACE\tSTATE\tPRIO\tEFFECTIVE\tVIPS")
	for _, v := range st.VRRP {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%s\n", v.Name, v.VRID, v.Interface, v.State, v.Priority,
			v.EffectivePriority, strings.Join(v.VIPs, ","))
	}
	tw.Flush()
	if len(st.VirtualServers) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIRTUAL SERVER\tSCHED\tMETHOD\tREAL SERVER\tWEIGHT\tSTATE\tLAST ERROR")
	for _, vs := range st.VirtualServers {
		name := fmt.Sprintf("%s %s:%d", vs.Protocol, vs.Address, vs.Port)
		if !vs.QuorumUp {
			name += " (quorum lost)"
		}
		for i, r := range vs.Reals {
			state := "down"
			if r.Up {
				state = "up"
			}
			first := name
			if i > 0 {
				first = ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d\t%d\t%s\t%s\n", first, vs.Scheduler, vs.Method, r.Address, r.Port, r.Weight, state, r.LastError)
		}
	}
	tw.Flush()
}
