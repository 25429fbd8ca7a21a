package metrics

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/dataplane"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

func sources() Sources {
	rec := dataplane.NewRecorder()
	rec.Apply(context.Background(), []dataplane.Service{{Key: dataplane.ServiceKey{Addr: netip.MustParseAddr("10.0.0.1"), Port: 80, Proto: dataplane.TCP},
		Scheduler: "rr", Method: dataplane.DR, Reals: []dataplane.Real{{Addr: netip.MustParseAddr("10.0.1.1"), Port: 80, Weight: 1}}}})
	return Sources{
		Status: func() api.Status {
			return api.Status{
				VRRP: []api.Instance{{Name: "VI_1", State: "MASTER", Priority: 100, EffectivePriority: 145, Transitions: 2,
					AdvertsSent: 7, Drops: map[string]int{"bad_ttl": 3}, Trackers: []api.Tracker{{Name: "chk", Kind: "script", Up: true}}}},
				VirtualServers: []api.VirtualServer{{ID: "10.0.0.1:80/tcp", Address: "10.0.0.1", Port: 80, Protocol: "tcp", QuorumUp: true,
					Reals: []api.Real{{Address: "10.0.1.1", Port: 80, Weight: 3, Up: true}, {Address: "10.0.1.2", Port: 80, Weight: 1}}}},
			}
		},
		Dataplane:    rec,
		Verdicts:     func() map[string]uint64 { return map[string]uint64{"tx": 5, "pass_not_vip": 0} },
		FlowEntries:  func() int { return 4 },
		ChangedSlots: func() map[string]int { return map[string]int{"tcp:10.0.0.1:80": 12} },
		InterfaceDrops: func() map[string]map[string]int {
			return map[string]map[string]int{"eth0": {"unknown_vrid": 4, "bad_length": 1}, "eth0/inet6": {}}
		},
	}
}

func TestScrape(t *testing.T) {
	m := New("1.2.3", sources())
	m.SetScripts([]string{"chk", "other"})
	m.ObserveCheck("TCP_CHECK", true, 3*time.Millisecond)
	m.ObserveCheck("TCP_CHECK", false, time.Second)
	m.Reloaded(false, time.Now())
	b := scrape(t, m)
	for _, want := range []string{
		`halo_build_info{goversion="go`,
		`version="1.2.3"} 1`,
		`halo_vrrp_state{instance="VI_1",state="MASTER"} 1`,
		`halo_vrrp_state{instance="VI_1",state="BACKUP"} 0`,
		`halo_vrrp_priority{instance="VI_1"} 100`,
		`halo_vrrp_effective_priority{instance="VI_1"} 145`,
		`halo_vrrp_transitions_total{instance="VI_1"} 2`,
		`halo_vrrp_adverts_sent_total{instance="VI_1"} 7`,
		`halo_vrrp_adverts_received_total{instance="VI_1"} 0`,
		`halo_vrrp_gratuitous_sent_total{instance="VI_1"} 0`,
		`halo_vrrp_advert_errors_total{instance="VI_1",reason="bad_ttl"} 3`,
		`halo_vrrp_advert_errors_total{instance="VI_1",reason="auth_failure"} 0`,
		`halo_track_script_up{script="chk"} 1`,
		`halo_track_script_up{script="other"} 0`,
		`halo_real_server_up{real_server="10.0.1.1:80",virtual_server="tcp:10.0.0.1:80"} 1`,
		`halo_real_server_up{real_server="10.0.1.2:80",virtual_server="tcp:10.0.0.1:80"} 0`,
		`halo_real_server_weight{real_server="10.0.1.1:80",virtual_server="tcp:10.0.0.1:80"} 3`,
		`halo_virtual_server_quorum_up{virtual_server="tcp:10.0.0.1:80"} 1`,
		`halo_dataplane_packets_total{virtual_server="tcp:10.0.0.1:80"} 0`,
		`halo_dataplane_connections_total{virtual_server="tcp:10.0.0.1:80"} 0`,
		`halo_dataplane_real_bytes_total{real_server="10.0.1.2:80",virtual_server="tcp:10.0.0.1:80"} 0`,
		`halo_xdp_packets_total{reason="tx"} 5`,
		`halo_xdp_flow_table_entries 4`,
		`halo_xdp_changed_slots{virtual_server="tcp:10.0.0.1:80"} 12`,
		`halo_checks_total{checker="TCP_CHECK",result="success"} 1`,
		`halo_checks_total{checker="TCP_CHECK",result="failure"} 1`,
		`halo_checks_total{checker="DNS_CHECK",result="failure"} 0`,
		`halo_check_duration_seconds_bucket{checker="TCP_CHECK",le="0.005"} 1`,
		`halo_check_duration_seconds_count{checker="SMTP_CHECK"} 0`,
		`halo_config_reloads_total{result="failure"} 1`,
		`halo_config_reloads_total{result="success"} 0`,
		`halo_config_last_reload_successful 0`,
		`halo_config_last_reload_success_timestamp_seconds 1.`,
		`go_goroutines`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(b, `state=`) && strings.Contains(b, `_total{instance="VI_1",state`) {
		t.Error("a counter carries a state label")
	}
}

// Flow-table entries per real address (XDP): every configured real has a
// series, entries for addresses no longer configured are shown too.
func TestRealFlows(t *testing.T) {
	src := sources()
	src.RealFlows = func() map[netip.Addr]int {
		return map[netip.Addr]int{netip.MustParseAddr("10.0.1.1"): 5, netip.MustParseAddr("10.0.7.7"): 1, {}: 2}
	}
	b := scrape(t, New("dev", src))
	for _, want := range []string{`halo_xdp_real_flow_table_entries{real_address="10.0.1.1"} 5`,
		`halo_xdp_real_flow_table_entries{real_address="10.0.1.2"} 0`,
		`halo_xdp_real_flow_table_entries{real_address="10.0.7.7"} 1`} {
		if !strings.Contains(b, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(b, `real_address="invalid IP"`) {
		t.Error("flows of an unknown real exported under an invalid address")
	}
}

// Adverts no instance claims are counted per interface and family, every
// reason from start-up.
func TestInterfaceDrops(t *testing.T) {
	b := scrape(t, New("dev", sources()))
	for _, want := range []string{`halo_vrrp_unknown_vrid_adverts_total{family="inet",interface="eth0"} 4`,
		`halo_vrrp_unknown_vrid_adverts_total{family="inet6",interface="eth0"} 0`,
		`halo_vrrp_interface_advert_errors_total{family="inet",interface="eth0",reason="bad_length"} 1`,
		`halo_vrrp_interface_advert_errors_total{family="inet6",interface="eth0",reason="malformed"} 0`} {
		if !strings.Contains(b, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Counters the VRRP side does not report are left out, not faked as 0.
func TestUnreportedVRRPSeriesLeftOut(t *testing.T) {
	src := sources()
	src.VRRPReports = map[string]bool{"name": true, "transitions": true}
	m := New("dev", src)
	m.SetScripts([]string{"chk"})
	b := scrape(t, m)
	for _, absent := range []string{"halo_vrrp_adverts_sent_total{", "halo_vrrp_adverts_received_total{",
		"halo_vrrp_gratuitous_sent_total{", "halo_track_script_up{"} {
		if strings.Contains(b, absent) {
			t.Errorf("%s exported though the VRRP side does not report it", absent)
		}
	}
	if !strings.Contains(b, `halo_vrrp_transitions_total{instance="VI_1"} 2`) {
		t.Error("reported series missing")
	}
	src.VRRPReports["adverts_sent"] = true
	if b := scrape(t, New("dev", src)); !strings.Contains(b, `halo_vrrp_adverts_sent_total{instance="VI_1"} 7`) {
		t.Error("adverts_sent reported but not exported")
	}
}

// promtool lints the exposition: names, units, help, counter suffixes.
func TestPromtoolCheckMetrics(t *testing.T) {
	testkit.Require(t, "promtool")
	promtool, _ := exec.LookPath("promtool")
	b := scrape(t, New("dev", sources()))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader([]byte(b))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
