package dataplane

import (
	"context"
	"sync"
)

// Recorder is an in-memory Backend for tests of the control plane. It keeps
// the installed set and every non-empty change list Apply computed, in order.
type Recorder struct {
	mu        sync.Mutex
	installed []Service
	history   []Changes
	failNext  error
	closed    bool
}

var _ Backend = (*Recorder)(nil)

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Name implements Backend.
func (r *Recorder) Name() string { return "recorder" }

// FailNext makes the next Apply return err without changing anything, to
// test how the control plane handles a failing kernel.
func (r *Recorder) FailNext(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext = err
}

// Apply implements Backend: invalid services are skipped and reported in a
// *SkippedError, the rest is applied, as the contract says.
func (r *Recorder) Apply(_ context.Context, desired []Service) error {
	desired, skipped := SplitValid(desired)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failNext != nil {
		err := r.failNext
		r.failNext = nil
		return err
	}
	c := Diff(r.installed, desired)
	if !c.Empty() {
		r.history = append(r.history, c)
	}
	r.installed = Canonical(desired)
	if len(skipped) > 0 {
		return &SkippedError{Skipped: skipped}
	}
	return nil
}

// Services implements Backend.
func (r *Recorder) Services(context.Context) ([]Service, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Canonical(r.installed), nil
}

// Stats implements Backend; a recorder forwards nothing, so all are zero.
func (r *Recorder) Stats(context.Context) ([]ServiceStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ServiceStats
	for _, s := range r.installed {
		st := ServiceStats{Key: s.Key, Reals: map[RealKey]Stats{}}
		for _, rs := range s.Reals {
			st.Reals[rs.Key()] = Stats{}
		}
		out = append(out, st)
	}
	return out, nil
}

// History returns the change lists of every Apply that changed something.
func (r *Recorder) History() []Changes {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Changes(nil), r.history...)
}

// Service returns the installed service with key k.
func (r *Recorder) Service(k ServiceKey) (Service, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.installed {
		if s.Key == k {
			return s, true
		}
	}
	return Service{}, false
}

// Close implements Backend.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

// NewNone is the `none` backend: it records the desired state for status
// and touches no kernel state (halod --dataplane none).
func NewNone() Backend { return &none{Recorder: NewRecorder()} }

type none struct{ *Recorder }

func (n *none) Name() string { return "none" }
