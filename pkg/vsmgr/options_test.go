package vsmgr

import (
	"context"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// keepalived's ops, TUN options and connection thresholds must reach the
// data plane: the IPVS backend installs them, and a manager that drops them
// would silently run a different service than the config describes.
func TestOptionsReachTheDataPlane(t *testing.T) {
	_, rec := newMgr(t, `
virtual_server 10.0.0.100 53 {
  protocol UDP
  ops
  lvs_method TUN type gue port 6080 csum
  real_server 10.0.1.1 53 {
    uthreshold 100
    lthreshold 10
  }
  real_server 10.0.1.2 53 {
    lvs_method TUN type gre
  }
}`)
	svcs, _ := rec.Services(context.Background())
	if len(svcs) != 1 {
		t.Fatalf("services %+v", svcs)
	}
	s := svcs[0]
	if !s.OnePacket {
		t.Errorf("ops not carried: %+v", s)
	}
	if want := (dataplane.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}); s.Tunnel != want {
		t.Errorf("service tunnel %+v, want %+v", s.Tunnel, want)
	}
	byAddr := map[string]dataplane.Real{}
	for _, r := range s.Reals {
		byAddr[r.Addr.String()] = r
	}
	if r := byAddr["10.0.1.1"]; r.UpperThreshold != 100 || r.LowerThreshold != 10 {
		t.Errorf("thresholds not carried: %+v", r)
	}
	if r := byAddr["10.0.1.2"]; r.Tunnel.Type != "gre" {
		t.Errorf("real tunnel not carried: %+v", r)
	}
}

// A failed real without inhibit_on_failure stays in the desired set marked
// Down (no new flows, established ones finish); a real removed from the
// config is absent (the data plane re-resolves its flows).
func TestFailedRealIsMarkedDown(t *testing.T) {
	m, rec := newMgr(t, three)
	m.SetCheck(0, 0, 0, false, -1, nil)
	if err := m.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	svcs, _ := rec.Services(context.Background())
	var down []string
	for _, r := range svcs[0].Reals {
		if r.Down {
			down = append(down, r.Addr.String())
		}
	}
	if len(down) != 1 || down[0] != "10.0.1.1" {
		t.Fatalf("down reals %v, want [10.0.1.1]; reals %+v", down, svcs[0].Reals)
	}
}
