package check

import (
	"context"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

// Misc is MISC_CHECK: exit 0 up, anything else down; with misc_dynamic,
// 0 up (weight unchanged), 1 down, 2–255 up with weight = code − 2.
type Misc struct {
	Script  *config.Script
	Timeout time.Duration
	Dynamic bool
	Runner  *script.Runner
}

// Name implements Checker.
func (*Misc) Name() string { return "MISC_CHECK" }

// Check implements Checker.
func (c *Misc) Check(ctx context.Context) Result {
	res, err := c.Runner.Run(ctx, c.Script, c.Timeout)
	switch {
	case err != nil:
		return fail(err)
	case res.TimedOut:
		return failf("timed out after %v (process group killed)", c.Timeout)
	case res.ExitCode == 0:
		return ok()
	case c.Dynamic && res.ExitCode >= 2:
		return Result{Weight: res.ExitCode - 2}
	}
	return failf("exit status %d", res.ExitCode)
}
