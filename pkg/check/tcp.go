package check

import (
	"context"
	"sync/atomic"
)

// TCP is TCP_CHECK: up when connect() completes within connect_timeout.
type TCP struct {
	T Target
	// skipRetry counts the attempts that, after one had to wait for its
	// handshake (a server some way off), go straight to the poller rather
	// than ask connect() again at once, which only pays for a server on
	// this host. At zero the next attempt asks again, so a server that
	// turns out close is noticed.
	skipRetry atomic.Int32
}

// retryEvery is how often, in attempts, a check of a server that made the
// last attempt wait asks connect() twice anyway.
const retryEvery = 16

// Name implements Checker.
func (*TCP) Name() string { return "TCP_CHECK" }

// Check implements Checker. The attempt is bounded by connect_timeout
// alone: watching ctx would cost a goroutine or a timer per connect, which
// matters at thousands of checks per second, so cancellation waits at most
// one connect_timeout.
func (c *TCP) Check(ctx context.Context) Result {
	retry := c.skipRetry.Load() <= 0
	if !retry {
		c.skipRetry.Add(-1)
	}
	waited, err := c.T.connectTCP(retry, socketsReused(ctx))
	switch {
	case !waited:
		c.skipRetry.Store(0)
	case retry:
		c.skipRetry.Store(retryEvery - 1)
	}
	if err != nil {
		return fail(err)
	}
	return ok()
}

func (*TCP) boundsItself() {}
