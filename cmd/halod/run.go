package main

import (
	"flag"
	"fmt"
	"io"
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("halod", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "halod", version)
		return 0
	}
	fmt.Fprintln(stderr, "halod: no configuration support yet")
	return 4
}
