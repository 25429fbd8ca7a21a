package main

import (
	"fmt"
	"io"

	"github.com/halo-lb/halo/pkg/config"
)

// daemon runs the configured instances until stopped. VRRP, checkers and
// the data plane are wired in by their own packages as they land.
func daemon(cfg *config.Config, o *options, stderr io.Writer) int {
	fmt.Fprintln(stderr, "halod: configuration loaded; the daemon (VRRP, checkers, data plane) is not implemented yet")
	return 1
}
