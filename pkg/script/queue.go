package script

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

// Queue runs jobs one at a time in the order they were queued. One queue
// per VRRP instance (or real server) makes notify scripts run strictly in
// order, never two at once: keepalived fires them concurrently and they can
// complete out of order, a long-standing complaint.
type Queue struct {
	r       *Runner
	log     *slog.Logger
	timeout time.Duration
	mu      sync.Mutex
	jobs    []job
	wake    chan struct{}
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
}

type job struct {
	s     *config.Script
	extra []string
	fn    func() // instead of a script: an ordered side effect (FIFO write)
}

// NewQueue starts a queue. timeout bounds each script (0: none).
func NewQueue(r *Runner, log *slog.Logger, timeout time.Duration) *Queue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{r: r, log: log, timeout: timeout, wake: make(chan struct{}, 1), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go q.loop()
	return q
}

// Script queues a script run with extra arguments.
func (q *Queue) Script(s *config.Script, extra ...string) {
	if s == nil {
		return
	}
	q.push(job{s: s, extra: extra})
}

// Func queues a function, run in order with the scripts.
func (q *Queue) Func(fn func()) { q.push(job{fn: fn}) }

func (q *Queue) push(j job) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) loop() {
	defer close(q.done)
	for {
		q.mu.Lock()
		if len(q.jobs) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.ctx.Done():
				return
			}
		}
		j := q.jobs[0]
		q.jobs = q.jobs[1:]
		q.mu.Unlock()
		if j.fn != nil {
			j.fn()
			continue
		}
		res, err := q.r.Run(q.ctx, j.s, q.timeout, j.extra...)
		switch {
		case err != nil:
			q.log.Error("script not run", "script", j.s.Raw, "err", err)
		case res.TimedOut:
			q.log.Warn("script timed out and was killed", "script", j.s.Raw, "timeout", q.timeout)
		case res.ExitCode != 0:
			q.log.Warn("script failed", "script", j.s.Raw, "exit", res.ExitCode, "output", string(res.Output))
		default:
			q.log.Debug("script ran", "script", j.s.Raw, "args", j.extra, "took", res.Duration)
		}
	}
}

// Drain waits until every queued job has run, at most d. It returns false
// when time ran out.
func (q *Queue) Drain(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		q.mu.Lock()
		n := len(q.jobs)
		q.mu.Unlock()
		if n == 0 {
			// The last job may still be running; a marker job tells us
			// when it is done.
			ch := make(chan struct{})
			q.Func(func() { close(ch) })
			select {
			case <-ch:
				return true
			case <-time.After(time.Until(deadline)):
				return false
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Close stops the queue, killing a running script.
func (q *Queue) Close() {
	q.cancel()
	<-q.done
}
