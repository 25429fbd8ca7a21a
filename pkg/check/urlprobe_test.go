package check

import (
	"testing"
	"time"
)

// urlStep is one attempt of a URL-walking probe: the URL it must fetch,
// the outcome, and what must follow.
type urlStep struct {
	url     int
	ok      bool
	changed bool
	up      bool
	after   time.Duration // delay until the next attempt
}

func runURLSteps(t *testing.T, p *Probe, steps []urlStep) {
	t.Helper()
	now := t0
	for i, s := range steps {
		if p.Next() != now {
			t.Fatalf("step %d: next attempt at %v, want %v", i, p.Next().Sub(t0), now.Sub(t0))
		}
		if p.URL() != s.url {
			t.Fatalf("step %d: attempt fetches url %d, want %d", i, p.URL(), s.url)
		}
		r := ok()
		if !s.ok {
			r = fail(errDown)
		}
		if ch := p.Record(now, r); ch != s.changed || p.Up() != s.up || p.Next() != now.Add(s.after) {
			t.Fatalf("step %d: changed %v up %v next +%v; want %v %v +%v", i, ch, p.Up(), p.Next().Sub(now), s.changed, s.up, s.after)
		}
		now = p.Next()
	}
}

const (
	dl  = 10 * time.Second // delay_loop
	dbr = 2 * time.Second  // delay_before_retry
)

// Three URLs, retry 1: while up keepalived fetches one URL per delay_loop;
// a URL that fails is retried after delay_before_retry, then the server is
// down and that URL is retried every max(delay_loop, delay_before_retry);
// once it answers, every URL must pass again one per delay_loop before the
// server is up.
func TestURLWalkUpFailRecover(t *testing.T) {
	p := NewProbe(1, dbr, dl, false, t0)
	p.WalkURLs(3, false)
	runURLSteps(t, p, []urlStep{
		{0, true, false, true, dl}, // start: server is up, first pass
		{1, true, false, true, dl},
		{2, true, false, true, dl},
		{0, true, false, true, dl}, // steady state: one URL per delay_loop
		{1, false, false, true, dbr},
		{1, false, true, false, dl}, // retry spent: down on url 1
		{1, false, false, false, dl},
		{1, true, false, false, dl}, // url 1 answers: walk all again
		{0, true, false, false, dl},
		{1, true, false, false, dl},
		{2, true, true, true, dl}, // up after the whole walk
		{0, true, false, true, dl},
	})
}

// fast_recovery removes the delay_loop between URLs on the way up, and only
// there: steady state and failures keep their pacing.
func TestURLWalkFastRecovery(t *testing.T) {
	p := NewProbe(1, dbr, dl, false, t0)
	p.WalkURLs(3, true)
	runURLSteps(t, p, []urlStep{
		{0, true, false, true, 0}, // before the first whole pass: back to back
		{1, true, false, true, 0},
		{2, true, false, true, dl},
		{0, true, false, true, dl},
		{1, false, false, true, dbr},
		{1, false, true, false, dl},
		{1, true, false, false, 0}, // recovering: back to back
		{0, true, false, false, 0},
		{1, false, false, false, dbr}, // a failure on the way keeps delay_before_retry (see urlprobe.go)
		{1, true, false, false, 0},
		{2, true, true, true, dl},
	})
}

// With one URL a failed server still needs two passes: the failed URL, then
// the walk over all (that one) URL again (fast_recovery: back to back).
func TestURLWalkSingleURLNeedsTwoPasses(t *testing.T) {
	for _, fast := range []bool{false, true} {
		p := NewProbe(0, dbr, dl, false, t0)
		p.WalkURLs(1, fast)
		gap := dl
		if fast {
			gap = 0
		}
		runURLSteps(t, p, []urlStep{
			{0, true, false, true, dl},
			{0, false, true, false, dl}, // retry 0: down at once
			{0, true, false, false, gap},
			{0, true, true, true, dl},
		})
	}
}

// alpha: the server starts down and comes up after one walk over the URLs,
// one per delay_loop, or back to back with fast_recovery.
func TestURLWalkAlphaStart(t *testing.T) {
	p := NewProbe(1, dbr, dl, true, t0)
	p.WalkURLs(2, false)
	runURLSteps(t, p, []urlStep{
		{0, true, false, false, dl},
		{1, true, true, true, dl},
	})
	p = NewProbe(1, dbr, dl, true, t0)
	p.WalkURLs(2, true)
	runURLSteps(t, p, []urlStep{
		{0, true, false, false, 0},
		{1, true, true, true, dl},
	})
}

// Before the first whole pass, a URL failing after an earlier one passed
// takes the server down without retries (keepalived presets its retry
// counter); a failure on the very first URL gets its retries.
func TestURLWalkFirstPassFailures(t *testing.T) {
	p := NewProbe(2, dbr, dl, false, t0)
	p.WalkURLs(2, false)
	runURLSteps(t, p, []urlStep{
		{0, true, false, true, dl},
		{1, false, true, false, dl},
	})
	p = NewProbe(2, dbr, dl, false, t0)
	p.WalkURLs(2, false)
	runURLSteps(t, p, []urlStep{
		{0, false, false, true, dbr},
		{0, false, false, true, dbr},
		{0, false, true, false, dl},
	})
}
