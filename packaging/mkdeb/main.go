// Command mkdeb builds halo's .deb (`make deb`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/halo-lb/halo/packaging"
)

func main() {
	var o packaging.Options
	flag.StringVar(&o.Root, "root", ".", "repository root")
	flag.StringVar(&o.OutDir, "o", "dist", "output `directory`")
	flag.StringVar(&o.Version, "version", "0.1.0", "package `version`")
	flag.StringVar(&o.Arch, "arch", "", "target GOARCH (default: this machine's)")
	flag.Parse()
	path, err := packaging.Build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
