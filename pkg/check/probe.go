package check

import (
	"time"
)

// Probe turns one checker's attempts into up/down, as keepalived does: an
// up server that fails is retried `retry` more times, delay_before_retry
// apart, and goes down when all of them fail; a down server comes up after
// one success. It is pure: times come in as arguments.
type Probe struct {
	Retry            int
	DelayBeforeRetry time.Duration
	DelayLoop        time.Duration

	up       bool
	failures int
	next     time.Time
	weight   int // from misc_dynamic; -1 when not set
	urls     *urlWalk
}

// NewProbe makes a probe whose first attempt is at first. alpha makes the
// server start down (keepalived's `alpha`); otherwise it starts up.
func NewProbe(retry int, dbr, delayLoop time.Duration, alpha bool, first time.Time) *Probe {
	return &Probe{Retry: retry, DelayBeforeRetry: dbr, DelayLoop: delayLoop, up: !alpha, next: first, weight: -1}
}

// Up reports the current verdict.
func (p *Probe) Up() bool { return p.up }

// Weight is the last weight misc_dynamic reported (-1: none).
func (p *Probe) Weight() int { return p.weight }

// Next is when the next attempt is due.
func (p *Probe) Next() time.Time { return p.next }

// Record takes the result of the attempt made at now and reports whether
// the verdict (or the dynamic weight) changed.
func (p *Probe) Record(now time.Time, r Result) bool {
	if p.urls != nil {
		return p.recordURL(now, r)
	}
	if r.Err == nil {
		p.failures = 0
		p.next = now.Add(p.DelayLoop)
		changed := !p.up
		p.up = true
		if r.Weight >= 0 && r.Weight != p.weight {
			p.weight = r.Weight
			changed = true
		}
		return changed
	}
	if !p.up {
		p.next = now.Add(p.DelayLoop)
		return false
	}
	p.failures++
	if p.failures <= p.Retry {
		p.next = now.Add(p.DelayBeforeRetry)
		return false
	}
	p.failures = 0
	p.up = false
	p.next = now.Add(p.DelayLoop)
	return true
}
