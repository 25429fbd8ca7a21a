package metrics

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

func TestScrape(t *testing.T) {
	rec := dataplane.NewRecorder()
	rec.Apply(context.Background(), []dataplane.Service{{Key: dataplane.ServiceKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Proto: dataplane.TCP},
		Scheduler: "rr", Method: dataplane.DR, Reals: []dataplane.Real{{Addr: netip.MustParseAddr("10.0.1.1"), Weight: 1}}}})
	src := Sources{
		VRRP: func() []vrrpd.Status {
			return []vrrpd.Status{{Name: "VI_1", State: "MASTER", EffectivePriority: 145, Transitions: 2, Drops: map[string]int{"bad_ttl": 3}}}
		},
		Virtual: func() []vsmgr.VSStatus {
			return []vsmgr.VSStatus{{Address: "10.0.0.1", Port: 80, Protocol: "tcp", QuorumUp: true,
				Reals: []vsmgr.RealStatus{{Address: "10.0.1.1", Port: 80, Weight: 3, Up: true}}}}
		},
		Dataplane: rec,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", src)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`halo_vrrp_state{instance="VI_1",state="MASTER"} 1`,
		`halo_vrrp_state{instance="VI_1",state="BACKUP"} 0`,
		`halo_vrrp_effective_priority{instance="VI_1"} 145`,
		`halo_vrrp_transitions_total{instance="VI_1"} 2`,
		`halo_vrrp_dropped_adverts_total{instance="VI_1",reason="bad_ttl"} 3`,
		`halo_real_server_up{real_server="10.0.1.1:80",virtual_server="tcp:10.0.0.1:80"} 1`,
		`halo_real_server_weight{real_server="10.0.1.1:80",virtual_server="tcp:10.0.0.1:80"} 3`,
		`halo_virtual_server_quorum_up{virtual_server="tcp:10.0.0.1:80"} 1`,
		`halo_dataplane_packets_total{virtual_server="tcp:10.0.0.1:80"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s", want)
		}
	}
}
