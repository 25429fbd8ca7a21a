package check

import (
	"context"
)

// TCP is TCP_CHECK: up when connect() completes within connect_timeout.
type TCP struct{ T Target }

// Name implements Checker.
func (*TCP) Name() string { return "TCP_CHECK" }

// Check implements Checker. The attempt is bounded by connect_timeout
// alone: watching ctx would cost a goroutine or a timer per connect, which
// matters at thousands of checks per second, so cancellation waits at most
// one connect_timeout.
func (c *TCP) Check(context.Context) Result {
	if err := c.T.connectTCP(); err != nil {
		return fail(err)
	}
	return ok()
}

func (*TCP) boundsItself() {}
