package check

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Job is one checker of one real server under the scheduler.
type Job struct {
	Checker Checker
	Probe   *Probe
	Timeout time.Duration // bound on one attempt (connect_timeout)
	// OnChange is called, from the job's goroutine, when the verdict or the
	// dynamic weight changes.
	OnChange func(up bool, weight int, err error)
	// OnResult, when set, is called after every attempt with its outcome
	// and how long it took (metrics: one histogram observation per check).
	OnResult func(r Result, latency time.Duration)

	paused atomic.Bool
	mu     sync.Mutex
	last   Status
}

// Status is what the last attempt found.
type Status struct {
	Up       bool          `json:"up"`
	Err      string        `json:"last_error,omitempty"`
	Latency  time.Duration `json:"-"`
	At       time.Time     `json:"-"`
	Attempts uint64        `json:"attempts"`
}

// Pause stops (or resumes) attempts, keeping the verdict: ha_suspend while
// this node is not master for the virtual server's address.
func (j *Job) Pause(p bool) { j.paused.Store(p) }

// Status returns the last attempt's outcome.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

// Scheduler runs jobs, each at its own pace, with at most Concurrency
// attempts in flight, until its context ends.
type Scheduler struct {
	Concurrency int
	// Clock paces the attempts; nil is the wall clock. Set it before Start.
	Clock Clock
	sem   chan struct{}
	wg    sync.WaitGroup
}

// URLWalker is a checker whose check is a series of URLs fetched one per
// attempt, as keepalived's HTTP_GET and SSL_GET are.
type URLWalker interface {
	URLCount() int
	FastRecovery() bool
	CheckURL(ctx context.Context, i int) Result
}

func (s *Scheduler) clock() Clock {
	if s.Clock == nil {
		return WallClock{}
	}
	return s.Clock
}

// NewScheduler bounds concurrent attempts (default 512).
func NewScheduler(concurrency int) *Scheduler {
	if concurrency <= 0 {
		concurrency = 512
	}
	return &Scheduler{Concurrency: concurrency, sem: make(chan struct{}, concurrency)}
}

// Start runs the job until ctx ends. warmup spreads the first attempt over
// a random 0..warmup, so thousands of checks do not fire together.
func (s *Scheduler) Start(ctx context.Context, j *Job, warmup time.Duration) {
	clk := s.clock()
	now := clk.Now()
	if warmup > 0 {
		j.Probe.next = now.Add(rand.N(warmup))
	} else {
		j.Probe.next = now
	}
	walker, walks := j.Checker.(URLWalker)
	_, bounded := j.Checker.(selfBounded)
	bounded = bounded && !walks
	if walks {
		j.Probe.WalkURLs(walker.URLCount(), walker.FastRecovery())
	}
	j.last.Up = j.Probe.Up()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx := reuseSockets(ctx)
		t := clk.NewTimer(j.Probe.Next().Sub(now))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			}
			if j.paused.Load() {
				t.Reset(time.Second)
				continue
			}
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			start := clk.Now()
			var r Result
			if bounded {
				r = j.Checker.Check(ctx)
			} else {
				actx, cancel := context.WithTimeout(ctx, j.Timeout+time.Second)
				if walks {
					r = walker.CheckURL(actx, j.Probe.URL())
				} else {
					r = j.Checker.Check(actx)
				}
				cancel()
			}
			<-s.sem
			if ctx.Err() != nil {
				return
			}
			now := clk.Now()
			changed := j.Probe.Record(now, r)
			j.mu.Lock()
			j.last.Up, j.last.Latency, j.last.At = j.Probe.Up(), now.Sub(start), now
			j.last.Attempts++
			j.last.Err = ""
			if r.Err != nil {
				j.last.Err = r.Err.Error()
			}
			j.mu.Unlock()
			if j.OnResult != nil {
				j.OnResult(r, now.Sub(start))
			}
			if changed && j.OnChange != nil {
				j.OnChange(j.Probe.Up(), j.Probe.Weight(), r.Err)
			}
			t.Reset(j.Probe.Next().Sub(now))
		}
	}()
}

// selfBounded is a checker whose attempt its own timeout bounds and which
// does not watch its context: the scheduler skips the timed context it
// makes for other attempts, a timer and a child context per attempt that
// at thousands of checks per second cost more CPU than the check itself.
type selfBounded interface{ boundsItself() }

// Wait waits for every job goroutine to end after the context is done.
func (s *Scheduler) Wait() { s.wg.Wait() }
