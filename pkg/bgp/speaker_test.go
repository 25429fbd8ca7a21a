package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
)

// A plain GoBGP server on 127.0.0.1 stands in for the router, so the
// speaker's reconciling, drain, stop, status and metrics are tested without
// root (the BIRD tests do the same against a real router in namespaces).
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRouter(t *testing.T, port int) *server.BgpServer {
	t.Helper()
	r := server.NewBgpServer()
	go r.Serve()
	ctx := context.Background()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "127.0.0.1",
		ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.2", PeerAsn: 65010},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 3, KeepaliveInterval: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// routes lists what the router learnt, as "prefix via nexthop".
func routes(r *server.BgpServer) []string {
	var out []string
	_ = r.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: gbgp.RF_IPv4_UC},
		func(prefix gbgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				nh := ""
				for _, a := range p.Attrs {
					if n, ok := a.(*gbgp.PathAttributeNextHop); ok {
						nh = n.Value.String()
					}
				}
				out = append(out, prefix.String()+" via "+nh)
			}
		})
	slices.Sort(out)
	return out
}

func waitRoutes(t *testing.T, r *server.BgpServer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(routes(r), want) {
		if time.Now().After(deadline) {
			t.Fatalf("router has %v, want %v", routes(r), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSpeakerLoopback(t *testing.T) {
	port := freePort(t)
	r := startRouter(t, port)
	sp, err := New(Config{LocalAS: 65010, RouterID: netip.MustParseAddr("127.0.0.2"),
		Neighbors: []Neighbor{{Addr: netip.MustParseAddr("127.0.0.1"), RemoteAS: 65000, HoldTime: 3, Port: port,
			LocalAddress: netip.MustParseAddr("127.0.0.2")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Before Start, updates are kept and announced once it runs.
	vss := []VirtualServer{{Addr: netip.MustParseAddr("10.96.100.100"), QuorumUp: true},
		{Addr: netip.MustParseAddr("10.96.100.101"), QuorumUp: true}}
	if err := sp.Update(vss, nil); err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sp.Stop(context.Background(), true)
	if err := sp.Update(vss, nil); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r, "10.96.100.100/32 via 127.0.0.2", "10.96.100.101/32 via 127.0.0.2")

	vss[0].QuorumUp = false
	if err := sp.Update(vss, nil); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r, "10.96.100.101/32 via 127.0.0.2")

	if err := sp.Drain(true); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r)
	// GoBGP counts a message once its write returned, which can be after the
	// router already acted on it: give the counter the same patience.
	st := sp.Status()
	for deadline := time.Now().Add(5 * time.Second); st.UpdatesSent < 3 && time.Now().Before(deadline); st = sp.Status() {
		time.Sleep(20 * time.Millisecond)
	}
	if !st.Drained || len(st.Announced) != 0 || len(st.Peers) != 1 || !st.Peers[0].Up || st.Peers[0].State != "established" ||
		st.Peers[0].HoldTime != 3 || st.UpdatesSent < 3 {
		t.Fatalf("status while drained: %+v", st)
	}
	if err := sp.Drain(false); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, r, "10.96.100.101/32 via 127.0.0.2")

	got := gather(t, sp)
	for _, w := range []string{`halo_bgp_announced{prefix="10.96.100.100/32"} 0`, `halo_bgp_announced{prefix="10.96.100.101/32"} 1`,
		`halo_bgp_session_up{peer="127.0.0.1"} 1`} {
		if !slices.Contains(got, w) {
			t.Fatalf("metrics lack %s: %v", w, got)
		}
	}
	if !slices.ContainsFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "halo_bgp_updates_sent_total{} ") && s != "halo_bgp_updates_sent_total{} 0"
	}) {
		t.Fatalf("no updates counted: %v", got)
	}

	// A clean stop withdraws before the session closes.
	sp.Stop(context.Background(), true)
	waitRoutes(t, r)
	if st := sp.Status(); len(st.Peers) != 0 {
		t.Fatalf("status after stop: %+v", st)
	}
}

// gather renders the collector's series as `name{k="v"} value`.
func gather(t *testing.T, sp *Speaker) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(sp.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out = append(out, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	return out
}
