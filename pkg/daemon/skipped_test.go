package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// partialBackend cannot serve one service and says one real's MAC is not
// resolved, as the XDP backend can.
type partialBackend struct {
	*dataplane.Recorder
	skip   dataplane.ServiceKey
	states []dataplane.RealState
}

func (p *partialBackend) Apply(ctx context.Context, desired []dataplane.Service) error {
	var keep []dataplane.Service
	for _, d := range desired {
		if d.Key != p.skip {
			keep = append(keep, d)
		}
	}
	if err := p.Recorder.Apply(ctx, keep); err != nil {
		return err
	}
	return &dataplane.SkippedError{Skipped: map[dataplane.ServiceKey]error{p.skip: errors.New("too many reals")}}
}

func (p *partialBackend) RealFlows() map[netip.Addr]int {
	return map[netip.Addr]int{netip.MustParseAddr("127.0.0.1"): 3}
}

func (p *partialBackend) RealStates(context.Context) ([]dataplane.RealState, error) {
	return p.states, nil
}

// haloctl status shows the services the data plane skipped and why a real
// cannot take new flows; the rest is applied.
func TestStatusShowsSkippedAndRealStates(t *testing.T) {
	_, p1 := listener(t)
	_, p2 := listener(t)
	vs1 := dataplane.ServiceKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Proto: dataplane.TCP}
	h := start(t, instance+vs("10.0.0.1", real(p1, 1))+vs("10.0.0.2", real(p2, 1)), func(h *harness) {
		h.d.o.Backend = &partialBackend{Recorder: h.rec,
			skip: dataplane.ServiceKey{Addr: netip.MustParseAddr("10.0.0.2"), Port: 80, Proto: dataplane.TCP},
			states: []dataplane.RealState{{Service: vs1, Real: dataplane.RealKey{Addr: netip.MustParseAddr("127.0.0.1"),
				Port: uint16(p1)}, Reason: "MAC not resolved"}}}
	})
	deadline := time.Now().Add(5 * time.Second)
	for len(h.d.Status().Skipped) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := h.d.Status()
	if len(st.Skipped) != 1 || st.Skipped[0].Service != "tcp:10.0.0.2:80" || st.Skipped[0].Reason != "too many reals" {
		t.Fatalf("skipped %+v", st.Skipped)
	}
	var found bool
	for _, v := range st.VirtualServers {
		for _, r := range v.Reals {
			if r.Port == p1 {
				found = r.DataplaneState == "MAC not resolved"
			} else if r.DataplaneState != "" {
				t.Errorf("real %s:%d marked %q", r.Address, r.Port, r.DataplaneState)
			}
		}
	}
	if !found {
		t.Fatalf("real state not shown: %+v", st.VirtualServers)
	}
	// The dump shows the flows the data plane holds per real address.
	for _, v := range h.d.Dump().VirtualServers {
		for _, r := range v.Reals {
			if r.FlowEntries == nil || *r.FlowEntries != 3 {
				t.Errorf("dump: real %s:%d flow_entries %v, want 3", r.Address, r.Port, r.FlowEntries)
			}
		}
	}
	if got := h.installed(); !strings.HasPrefix(got, "tcp:10.0.0.1:80=") || strings.Contains(got, "10.0.0.2") {
		t.Fatalf("installed %q", got)
	}
}
