package main

import (
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// TestDemo runs what `make demo` shows, so the README's first command cannot
// rot: a failed real leaves the traffic, and a download survives the
// master's crash (the figures are logged).
func TestDemo(t *testing.T) {
	lab.RequireRoot(t)
	res := run(t)
	t.Logf("real down after %v; crash failover: VIP moved in %v, download stalled %v", res.RealDown, res.VIPMoved, res.Stall)
}
