package check

import (
	"context"
	"net"
)

// TCP is TCP_CHECK: up when connect() completes within connect_timeout.
type TCP struct{ T Target }

// Name implements Checker.
func (*TCP) Name() string { return "TCP_CHECK" }

// Check implements Checker.
func (c *TCP) Check(ctx context.Context) Result {
	// The dialer's own timeout bounds the attempt; a cancellable context
	// would cost a watcher goroutine per connect, which matters at
	// thousands of checks per second. Cancellation waits at most one
	// connect_timeout.
	conn, err := c.T.dialer("tcp").DialContext(context.WithoutCancel(ctx), "tcp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	// Close with a reset: no FIN exchange and no TIME_WAIT left on the
	// director for every check.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
	return ok()
}
