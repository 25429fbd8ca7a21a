package check

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock drives the scheduler's timers by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	ch    chan time.Time
	at    time.Time
	armed bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), armed: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	t.at, t.armed = t.c.now.Add(d), true
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.armed = false
}

// armed waits (bounded) for the job's timer to be set and returns its delay
// from now.
func (c *fakeClock) armed(tb testing.TB) time.Duration {
	tb.Helper()
	for range 2000 {
		c.mu.Lock()
		for _, t := range c.timers {
			if t.armed {
				d := t.at.Sub(c.now)
				c.mu.Unlock()
				return d
			}
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	tb.Fatal("the scheduler never armed its timer")
	return 0
}

// advance moves time by d and fires the timers that are due.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.armed && !t.at.After(c.now) {
			t.armed = false
			t.ch <- c.now
		}
	}
}

// scripted is a checker whose results are given by the test; each attempt
// reports the URL it was asked for (-1: a whole Check).
type scripted struct {
	results  []bool
	attempts chan int
	urls     int
}

func (s *scripted) Name() string { return "SCRIPTED" }

func (s *scripted) next(url int) Result {
	s.attempts <- url
	okay := len(s.results) > 0 && s.results[0]
	if len(s.results) > 0 {
		s.results = s.results[1:]
	}
	if okay {
		return ok()
	}
	return fail(errDown)
}

func (s *scripted) Check(context.Context) Result { return s.next(-1) }

type scriptedURLs struct{ *scripted }

func (s scriptedURLs) URLCount() int                            { return s.urls }
func (s scriptedURLs) FastRecovery() bool                       { return false }
func (s scriptedURLs) CheckURL(_ context.Context, i int) Result { return s.next(i) }

type wantAttempt struct {
	delay time.Duration // since the previous attempt
	url   int
}

func runScheduled(t *testing.T, ck Checker, p *Probe, want []wantAttempt, attempts chan int) []bool {
	t.Helper()
	clk := &fakeClock{now: t0}
	s := NewScheduler(4)
	s.Clock = clk
	var changes []bool
	var mu sync.Mutex
	j := &Job{Checker: ck, Probe: p, Timeout: time.Second,
		OnChange: func(up bool, _ int, _ error) { mu.Lock(); changes = append(changes, up); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.Wait() }()
	s.Start(ctx, j, 0)
	for i, w := range want {
		if d := clk.armed(t); d != w.delay {
			t.Fatalf("attempt %d due after %v, want %v", i, d, w.delay)
		}
		clk.advance(w.delay)
		select {
		case u := <-attempts:
			if u != w.url {
				t.Fatalf("attempt %d fetched url %d, want %d", i, u, w.url)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("attempt %d never ran", i)
		}
	}
	clk.armed(t) // the last result is recorded
	mu.Lock()
	defer mu.Unlock()
	return append([]bool(nil), changes...)
}

// The scheduler paces attempts by the injected clock, as the probe says:
// delay_loop when healthy, delay_before_retry on retries.
func TestSchedulerUsesInjectedClock(t *testing.T) {
	sc := &scripted{results: []bool{true, false, false, true}, attempts: make(chan int, 1)}
	p := NewProbe(1, dbr, dl, false, time.Time{})
	changes := runScheduled(t, sc, p, []wantAttempt{{0, -1}, {dl, -1}, {dbr, -1}, {dl, -1}}, sc.attempts)
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("verdict changes %v, want down then up", changes)
	}
}

// A checker with url blocks is walked one URL per attempt.
func TestSchedulerWalksURLs(t *testing.T) {
	sc := &scripted{results: []bool{true, true, true, true}, attempts: make(chan int, 1), urls: 3}
	p := NewProbe(1, dbr, dl, true, time.Time{})
	changes := runScheduled(t, scriptedURLs{sc}, p, []wantAttempt{{0, 0}, {dl, 1}, {dl, 2}, {dl, 0}}, sc.attempts)
	if len(changes) != 1 || !changes[0] {
		t.Fatalf("verdict changes %v, want up after the third url", changes)
	}
}

// ctxProbe reports whether each attempt's context carried a deadline.
type ctxProbe struct{ deadline chan bool }

func (c *ctxProbe) Name() string { return "CTX" }
func (c *ctxProbe) Check(ctx context.Context) Result {
	_, ok := ctx.Deadline()
	select {
	case c.deadline <- ok:
	default:
	}
	return Result{Weight: -1}
}

type selfBoundedProbe struct{ ctxProbe }

func (*selfBoundedProbe) boundsItself() {}

// An attempt gets a context bounded by connect_timeout + 1 s, except from
// a checker that bounds itself (TCP_CHECK), which gets the scheduler's own.
func TestSchedulerTimedContextOnlyWhenNeeded(t *testing.T) {
	for _, tc := range []struct {
		c    Checker
		want bool
	}{
		{&ctxProbe{make(chan bool, 1)}, true},
		{&selfBoundedProbe{ctxProbe{make(chan bool, 1)}}, false},
		{&TCP{}, false},
	} {
		var got chan bool
		switch c := tc.c.(type) {
		case *ctxProbe:
			got = c.deadline
		case *selfBoundedProbe:
			got = c.deadline
		default:
			if _, ok := c.(selfBounded); ok != !tc.want {
				t.Errorf("%T: selfBounded %v", c, ok)
			}
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		s := NewScheduler(1)
		s.Start(ctx, &Job{Checker: tc.c, Probe: NewProbe(0, time.Second, time.Hour, false, time.Now()), Timeout: time.Second}, 0)
		select {
		case d := <-got:
			if d != tc.want {
				t.Errorf("%T: attempt context has a deadline: %v, want %v", tc.c, d, tc.want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%T: no attempt", tc.c)
		}
		cancel()
		s.Wait()
	}
}
