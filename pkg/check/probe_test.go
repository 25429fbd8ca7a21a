package check

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var errDown = errors.New("refused")

// retry 2, delay_before_retry 1 s, delay_loop 10 s: an up server that stops
// answering is tried at t, t+1, t+2 and is down after the third failure;
// one success brings it back.
func TestProbeRetrySemantics(t *testing.T) {
	p := NewProbe(2, time.Second, 10*time.Second, false, t0)
	steps := []struct {
		at      time.Duration
		ok      bool
		changed bool
		up      bool
		next    time.Duration
	}{
		{0, true, false, true, 10 * time.Second},
		{10 * time.Second, false, false, true, 11 * time.Second},
		{11 * time.Second, false, false, true, 12 * time.Second},
		{12 * time.Second, false, true, false, 22 * time.Second},
		{22 * time.Second, false, false, false, 32 * time.Second},
		{32 * time.Second, true, true, true, 42 * time.Second},
	}
	for i, s := range steps {
		if p.Next() != t0.Add(s.at) {
			t.Fatalf("step %d: next attempt at %v, want %v", i, p.Next().Sub(t0), s.at)
		}
		r := Result{Weight: -1}
		if !s.ok {
			r.Err = errDown
		}
		if ch := p.Record(t0.Add(s.at), r); ch != s.changed || p.Up() != s.up || p.Next() != t0.Add(s.next) {
			t.Fatalf("step %d: changed %v up %v next %v", i, ch, p.Up(), p.Next().Sub(t0))
		}
	}
}

func TestProbeFlappingNeedsConsecutiveFailures(t *testing.T) {
	p := NewProbe(1, time.Second, 5*time.Second, false, t0)
	now := t0
	for i := 0; i < 20; i++ {
		r := Result{Weight: -1}
		if i%2 == 0 {
			r.Err = errDown
		}
		if p.Record(now, r) {
			t.Fatalf("alternating results changed the verdict at %d", i)
		}
		now = p.Next()
	}
	if !p.Up() {
		t.Fatal("went down")
	}
}

func TestProbeRetryZeroAndAlpha(t *testing.T) {
	p := NewProbe(0, time.Second, 5*time.Second, false, t0)
	if !p.Record(t0, Result{Err: errDown, Weight: -1}) || p.Up() {
		t.Fatal("retry 0: one failure must bring it down")
	}
	a := NewProbe(3, time.Second, 5*time.Second, true, t0)
	if a.Up() {
		t.Fatal("alpha starts down")
	}
	if !a.Record(t0, Result{Weight: -1}) || !a.Up() {
		t.Fatal("one success brings an alpha server up")
	}
}

func TestProbeDynamicWeight(t *testing.T) {
	p := NewProbe(1, time.Second, 5*time.Second, false, t0)
	if !p.Record(t0, Result{Weight: 8}) || p.Weight() != 8 {
		t.Fatal("weight change not reported")
	}
	if p.Record(t0.Add(5*time.Second), Result{Weight: 8}) {
		t.Fatal("same weight reported as a change")
	}
	if !p.Record(t0.Add(10*time.Second), Result{Weight: 2}) || p.Weight() != 2 {
		t.Fatal("weight is the latest, not cumulative")
	}
}
