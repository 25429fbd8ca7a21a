// Command haloctl talks to a running halod over its control socket. Each
// verb lives in its own file; this one only dispatches.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/daemon/manpage"
)

var version = "dev"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// verb is one haloctl command: args are those after the verb's name.
type verb struct {
	name, usage, help string
	run               func(c *control.Client, args []string, stdout, stderr io.Writer) int
}

func verbs() []verb {
	return []verb{statusVerb, reloadVerb, realVerb, dumpVerb, drainVerb}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: haloctl [--control PATH] COMMAND [ARGS]\n\ncommands:")
	for _, v := range verbs() {
		fmt.Fprintf(w, "  %-40s %s\n", v.usage, v.help)
	}
	fmt.Fprintf(w, "  %-40s %s\n", "version", "print the version")
}

func globalFlags(stderr io.Writer) (*flag.FlagSet, *string, *bool) {
	fs := flag.NewFlagSet("haloctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	path := fs.String("control", "/run/halo/halod.sock", "halod's control socket `path`")
	man := fs.Bool("man", false, "print this manual page (troff) and exit")
	return fs, path, man
}

func run(args []string, stdout, stderr io.Writer) int {
	fs, path, man := globalFlags(stderr)
	if err := fs.Parse(args); err == flag.ErrHelp {
		return 0
	} else if err != nil {
		return 2
	}
	if *man {
		manpage.Render(stdout, manPage(fs))
		return 0
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	if name == "version" {
		fmt.Fprintln(stdout, "haloctl", version)
		return 0
	}
	for _, v := range verbs() {
		if v.name == name {
			return v.run(control.NewClient(*path), fs.Args()[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "haloctl: unknown command %q\n", name)
	fs.Usage()
	return 2
}

// subFlags is a verb's own flag set.
func subFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("haloctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
