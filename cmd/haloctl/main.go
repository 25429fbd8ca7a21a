// Command haloctl talks to a running halod over its control socket.
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("haloctl", version)
		return
	}
	fmt.Fprintln(os.Stderr, "usage: haloctl version")
	os.Exit(2)
}
