package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/pkg/control/api"
)

// metricValue reads one sample ("name{labels}") from an exposition; -1
// when absent.
func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func haloctl(t *testing.T, sock string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(haloctlBin, append([]string{"--control", sock}, args...)...).CombinedOutput()
	return string(out), err
}

// haloctl status --json and /metrics of a running halod (XDP DR, one VRRP
// instance) agree with the kernel and with the traffic sent: the state
// and VIP match `ip addr`, the data-plane counters grow by at least the
// packets of the connections made, real-server state follows a stopped
// server, and `haloctl real disable` drains a real (no new connections)
// until `enable`.
//
// The director tracks every flow (flow_tracking always), so the flow-table
// metrics have flows to count: by default entries exist only where a
// table changed.
func TestOpsStatusAndMetricsMatchReality(t *testing.T) {
	d := newDRLab(t, 141, "generic")
	conf, err := os.ReadFile(d.conf)
	if err != nil {
		t.Fatal(err)
	}
	always := strings.Replace(string(conf), "xdp_mode generic", "xdp_mode generic\n  flow_tracking always", 1)
	if err := os.WriteFile(d.conf, []byte(always), 0o644); err != nil {
		t.Fatal(err)
	}
	dumpFile := filepath.Join(t.TempDir(), "halo.data")
	halod := startHalod(t, d.dir, d.conf, "--dataplane", "xdp", "--bpffs", d.bpffs, "--control", d.sock,
		"--metrics-addr", "127.0.0.1:9650", "--dump-file", dumpFile)
	d.waitReady(t)

	// State against the kernel.
	st := haloctlStatus(t, d.sock)
	if len(st.VRRP) != 1 || st.VRRP[0].State != "MASTER" || !d.dir.HasAddr(d.vip) {
		t.Fatalf("status %+v, VIP on the director: %v", st.VRRP, d.dir.HasAddr(d.vip))
	}
	if d.cl.HasAddr(d.vip) || len(st.VRRP[0].VIPs) != 1 || !strings.HasPrefix(st.VRRP[0].VIPs[0], d.vip+"/") {
		t.Fatalf("VIPs %v", st.VRRP[0].VIPs)
	}
	m := d.scrape(t)
	vs := fmt.Sprintf(`virtual_server="tcp:%s:80"`, d.vip)
	for series, want := range map[string]float64{
		`halo_vrrp_state{instance="VI_1",state="MASTER"}`: 1,
		`halo_vrrp_state{instance="VI_1",state="BACKUP"}`: 0,
		`halo_vrrp_priority{instance="VI_1"}`:             255,
		`halo_virtual_server_quorum_up{` + vs + `}`:       1,
		`halo_config_last_reload_successful`:              1,
		`halo_config_reloads_total{result="failure"}`:     0,
	} {
		if got := metricValue(m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if testkit.Strict() || lookPath("promtool") {
		testkit.Require(t, "promtool")
		cmd := exec.Command("promtool", "check", "metrics")
		// promtool lints only halo's own series; the Go runtime's are the
		// client library's.
		var own []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "halo_") || strings.HasPrefix(l, "# HELP halo_") || strings.HasPrefix(l, "# TYPE halo_") {
				own = append(own, l)
			}
		}
		cmd.Stdin = strings.NewReader(strings.Join(own, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics on the live /metrics: %v\n%s", err, out)
		}
	}

	// Counters grow with the traffic sent: each connection is at least
	// SYN, ACK, request, ACK of the answer, FIN from the client.
	pktsKey := `halo_dataplane_packets_total{` + vs + `}`
	connsKey := `halo_dataplane_connections_total{` + vs + `}`
	before, beforeConns := metricValue(m, pktsKey), metricValue(m, connsKey)
	newFlows := `halo_xdp_packets_total{reason="ct_new"}`
	flowsBefore := metricValue(m, newFlows)
	checksBefore := metricValue(m, `halo_checks_total{checker="HTTP_GET",result="success"}`)
	const conns = 40
	served := map[string]int{}
	for i := 0; i < conns; i++ {
		name, err := d.get(t)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		served[strings.TrimSpace(name)]++
	}
	m = d.scrape(t)
	after, afterConns := metricValue(m, pktsKey), metricValue(m, connsKey)
	t.Logf("%d connections: packets %v -> %v, connections %v -> %v, served %v", conns, before, after, beforeConns, afterConns, served)
	if before < 0 || after-before < 4*conns {
		t.Errorf("%s grew by %v for %d connections", pktsKey, after-before, conns)
	}
	if got := metricValue(m, newFlows); flowsBefore < 0 || got-flowsBefore < conns {
		t.Errorf("%s grew from %v to %v for %d connections", newFlows, flowsBefore, got, conns)
	}
	var realSum float64
	for i := 0; i < 3; i++ {
		realSum += metricValue(m, fmt.Sprintf(`halo_dataplane_real_packets_total{real_server="10.141.0.%d:80",%s}`, 11+i, vs))
	}
	if realSum < after-before-float64(conns) {
		t.Errorf("real-server packet counters sum to %v, the service's grew by %v", realSum, after-before)
	}
	// The flow table holds the connections just made, per real address.
	var flowSum float64
	for i := 0; i < 3; i++ {
		flowSum += metricValue(m, fmt.Sprintf(`halo_xdp_real_flow_table_entries{real_address="10.141.0.%d"}`, 11+i))
	}
	if flowTable := metricValue(m, `halo_xdp_flow_table_entries`); flowSum < 1 || flowSum > flowTable {
		t.Errorf("per-real flow entries sum to %v after %d connections (table holds %v)", flowSum, conns, flowTable)
	}
	// Checks run every delay_loop (1 s): within a few seconds they count.
	checksKey := `halo_checks_total{checker="HTTP_GET",result="success"}`
	if waitFor(5*time.Second, func() bool { return metricValue(d.scrape(t), checksKey) >= checksBefore+3 }) < 0 {
		t.Errorf("%s stayed at %v (was %v)", checksKey, metricValue(d.scrape(t), checksKey), checksBefore)
	}
	if metricValue(d.scrape(t), `halo_check_duration_seconds_count{checker="HTTP_GET"}`) < 3 {
		t.Errorf("halo_check_duration_seconds has no HTTP_GET observations")
	}
	// The master sends an advert every advert_int (1 s) and announced its
	// VIP when it took over: the counters say so, and status agrees.
	sentKey := `halo_vrrp_adverts_sent_total{instance="VI_1"}`
	sentBefore := metricValue(m, sentKey)
	if waitFor(5*time.Second, func() bool { return metricValue(d.scrape(t), sentKey) >= sentBefore+2 }) < 0 || sentBefore < 0 {
		t.Errorf("%s stayed at %v (was %v) on the master", sentKey, metricValue(d.scrape(t), sentKey), sentBefore)
	}
	if g := metricValue(d.scrape(t), `halo_vrrp_gratuitous_sent_total{instance="VI_1"}`); g < 1 {
		t.Errorf("halo_vrrp_gratuitous_sent_total = %v after becoming master", g)
	}
	if st := haloctlStatus(t, d.sock); st.VRRP[0].AdvertsSent < uint64(sentBefore)+2 || st.VRRP[0].AdvertInterval != "1s" {
		t.Errorf("status adverts_sent %d (metric was %v), advert_interval %q", st.VRRP[0].AdvertsSent, sentBefore,
			st.VRRP[0].AdvertInterval)
	}

	// A stopped real: status, metrics and dump agree it is down.
	d.reals[2].stop()
	realDown := func() bool {
		up, found, _ := realUp(haloctlStatus(t, d.sock), "10.141.0.13")
		return found && !up
	}
	if waitFor(6*time.Second, realDown) < 0 {
		t.Fatalf("real3 not down: %+v", haloctlStatus(t, d.sock))
	}
	m = d.scrape(t)
	if got := metricValue(m, fmt.Sprintf(`halo_real_server_up{real_server="10.141.0.13:80",%s}`, vs)); got != 0 {
		t.Errorf("halo_real_server_up for the stopped real = %v", got)
	}
	out, err := haloctl(t, d.sock, "dump")
	var dump api.Dump
	if err != nil || json.Unmarshal([]byte(out), &dump) != nil {
		t.Fatalf("haloctl dump: %v\n%s", err, out)
	}
	r3 := dump.VirtualServers[0].Reals[2]
	if r3.Up || len(r3.Checkers) != 1 || r3.Checkers[0].LastError == "" || r3.Checkers[0].Attempts == 0 {
		t.Errorf("dump of the stopped real: %+v", r3)
	}
	if len(dump.DataplaneServices) != 1 || dump.DataplaneServices[0].Counters.Packets < uint64(after) {
		t.Errorf("dump data plane: %+v", dump.DataplaneServices)
	}

	// Drain real1: weight 0, no new connections; enable: back.
	if out, err := haloctl(t, d.sock, "real", "disable", d.vip+":80", "10.141.0.11:80"); err != nil {
		t.Fatalf("real disable: %v\n%s", err, out)
	}
	drained := func() bool {
		return metricValue(d.scrape(t), fmt.Sprintf(`halo_real_server_weight{real_server="10.141.0.11:80",%s}`, vs)) == 0
	}
	if waitFor(5*time.Second, drained) < 0 {
		t.Fatal("real1's weight not 0 after disable")
	}
	time.Sleep(200 * time.Millisecond) // the data plane applies asynchronously
	for i := 0; i < 30; i++ {
		name, err := d.get(t)
		if err != nil {
			t.Fatalf("connection %d while drained: %v", i, err)
		}
		if strings.TrimSpace(name) == "real1" {
			t.Fatalf("drained real1 got connection %d", i)
		}
	}
	if out, err := haloctl(t, d.sock, "real", "enable", d.vip+":80", "10.141.0.11:80"); err != nil {
		t.Fatalf("real enable: %v\n%s", err, out)
	}
	got1 := waitFor(5*time.Second, func() bool {
		name, _ := d.get(t)
		return strings.TrimSpace(name) == "real1"
	})
	if got1 < 0 {
		t.Fatal("real1 got no connection after enable")
	}
	if out, err := haloctl(t, d.sock, "real", "disable", d.vip+":80", "10.141.0.99:80"); err == nil {
		t.Fatalf("disable of an unknown real succeeded: %s", out)
	}

	// SIGUSR1 writes the dump file.
	halod.Signal(syscall.SIGUSR1)
	if waitFor(5*time.Second, func() bool { b, _ := os.ReadFile(dumpFile); return json.Valid(b) && len(b) > 0 }) < 0 {
		t.Fatalf("no dump at %s after SIGUSR1\n%s", dumpFile, halod.Output())
	}
}

func lookPath(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}
