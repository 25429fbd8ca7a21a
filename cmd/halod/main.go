// Command halod is halo's daemon: VRRP, health checks and the data plane.
package main

import "os"

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
