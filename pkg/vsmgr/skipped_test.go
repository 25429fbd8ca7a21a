package vsmgr

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/script"
)

// skipper is a backend that cannot serve one service: it applies the
// rest and reports that one in a *SkippedError, as the contract says.
type skipper struct {
	*dataplane.Recorder
	skip    dataplane.ServiceKey
	reason  string
	mu      sync.Mutex
	failing error
}

func (s *skipper) Apply(ctx context.Context, desired []dataplane.Service) error {
	var keep []dataplane.Service
	for _, d := range desired {
		if d.Key != s.skip {
			keep = append(keep, d)
		}
	}
	s.mu.Lock()
	fail := s.failing
	s.mu.Unlock()
	if fail != nil {
		return errors.Join(fail, &dataplane.SkippedError{Skipped: map[dataplane.ServiceKey]error{s.skip: errors.New(s.reason)}})
	}
	if err := s.Recorder.Apply(ctx, keep); err != nil {
		return err
	}
	return &dataplane.SkippedError{Skipped: map[dataplane.ServiceKey]error{s.skip: errors.New(s.reason)}}
}

// A skipped service is a partial success: the others are installed, the
// skip is reported and logged once, and the set is not marked for retry;
// a real kernel error still is.
func TestSkippedServiceIsPartialSuccess(t *testing.T) {
	var logs bytes.Buffer
	be := &skipper{Recorder: dataplane.NewRecorder(), reason: "flow table limit reached",
		skip: dataplane.ServiceKey{Addr: netip.MustParseAddr("10.0.0.2"), Port: 80, Proto: dataplane.TCP}}
	m, err := New(load(t, `
virtual_server 10.0.0.1 80 {
  protocol TCP
  real_server 10.0.1.1 80 { }
}
virtual_server 10.0.0.2 80 {
  protocol TCP
  real_server 10.0.1.2 80 { }
}`), be, &script.Runner{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	for i := range 3 {
		if err := m.Apply(context.Background()); err != nil {
			t.Fatalf("apply %d: a skip alone is no failure: %v", i, err)
		}
	}
	svcs, _ := be.Services(context.Background())
	if len(svcs) != 1 || svcs[0].Key.Addr != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("installed %+v, want the other service", svcs)
	}
	if got := m.Skipped(); len(got) != 1 || got["tcp:10.0.0.2:80"] != "flow table limit reached" {
		t.Fatalf("Skipped() = %v", got)
	}
	m.mu.Lock()
	dirty := m.dirty
	m.mu.Unlock()
	if dirty || m.LastApplyError() != nil {
		t.Fatalf("dirty %v, last error %v: a skip must not be retried every 5 s", dirty, m.LastApplyError())
	}
	if n := strings.Count(logs.String(), "data plane skipped a service"); n != 1 {
		t.Fatalf("skip logged %d times over 3 applies, want once:\n%s", n, logs.String())
	}
	be.mu.Lock()
	be.failing = errors.New("netlink: no buffer space")
	be.mu.Unlock()
	if err := m.Apply(context.Background()); err == nil {
		t.Fatal("a kernel error next to a skip was swallowed")
	}
	m.mu.Lock()
	dirty = m.dirty
	m.mu.Unlock()
	if !dirty {
		t.Fatal("a kernel error must leave the set marked for retry")
	}
}
