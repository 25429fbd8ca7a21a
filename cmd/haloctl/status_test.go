package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/control/api"
)

func TestStatus(t *testing.T) {
	f := &fake{status: api.Status{Version: "1.0", Config: api.ConfigStatus{LastReloadSuccessful: true},
		VRRP: []api.Instance{{Name: "VI_1", VRID: 51, Interface: "eth0", State: "MASTER", Priority: 100, EffectivePriority: 100, VIPs: []string{"10.0.0.1/32"}}},
		VirtualServers: []api.VirtualServer{{ID: "10.0.0.1:80/tcp", Scheduler: "rr", Method: "DR", QuorumUp: true,
			Reals: []api.Real{{Address: "10.0.1.1", Port: 80, Weight: 0, Up: true, Drained: true}, {Address: "10.0.1.2", Port: 80, Weight: 1, LastError: "connection refused",
				DataplaneState: "MAC not resolved", Counters: &api.Counts{Packets: 4242, Bytes: 987654}}}}},
		Skipped: []api.SkippedService{{Service: "tcp:10.0.0.9:80", Reason: "flow table limit reached"}}}}
	sock := serve(t, f)
	code, out, errs := haloctl(t, "--control", sock, "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"VI_1", "MASTER", "10.0.0.1/32", "10.0.0.1:80/tcp", "10.0.1.1:80  0       up,drained", "connection refused", "4242", "987654",
		"MAC not resolved", "Skipped by the data plane", "tcp:10.0.0.9:80: flow table limit reached"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = haloctl(t, "--control", sock, "status", "--json")
	var st api.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.VRRP[0].State != "MASTER" || !st.VirtualServers[0].Reals[0].Drained ||
		st.VirtualServers[0].Reals[1].DataplaneState != "MAC not resolved" || len(st.Skipped) != 1 {
		t.Fatalf("json (exit %d): %s", code, out)
	}
	if code, _, errs := haloctl(t, "--control", sock+".none", "status"); code != 1 || !strings.Contains(errs, "cannot reach halod") {
		t.Fatalf("no daemon: exit %d %s", code, errs)
	}
	if code, _, _ := haloctl(t, "--control", sock, "status", "extra"); code != 2 {
		t.Fatalf("extra argument: exit %d", code)
	}
}
