package vrrpd

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/vrrp"
)

// Only adverts that pass every check count as received; the status names
// the trackers with their kind, status and weight, and the interval in
// use; the JSON names are the ones pkg/metrics and the control API read.
func TestStatusCountersAndTrackers(t *testing.T) {
	d, clk := testDaemon(t, "vrrp_script chk {\n script /bin/true\n weight -20\n}\n"+
		inst2("VI_1", 51, " priority 100\n track_script {\n  chk\n }\n track_interface {\n  lo weight 5\n }"))
	cs := conn(d)
	good := vrrp.Advert{Version: 2, VRID: 51, Priority: 200, Interval: 1, Addrs: []netip.Addr{vipA}}
	bad := good
	bad.VRID = 99
	clk.t = clk.t.Add(100 * time.Millisecond)
	d.receive(clk.t, cs, pkt(t, bad, peer, mgroup, 255, 0))
	d.receive(clk.t, cs, pkt(t, good, peer, mgroup, 64, 0)) // bad TTL
	d.receive(clk.t, cs, pkt(t, good, peer, mgroup, 255, 0))
	d.receive(clk.t, cs, pkt(t, good, peer, mgroup, 255, 0))
	d.handle(event{kind: evScript, name: "chk", ok: true})
	d.publish()
	st := d.Status()
	if len(st) != 1 {
		t.Fatalf("status %+v", st)
	}
	s := st[0]
	if s.AdvertsReceived != 2 {
		t.Errorf("adverts_received %d, want 2 (the unknown VRID and the bad TTL are drops)", s.AdvertsReceived)
	}
	if s.AdvertsSent != 0 || s.GratuitousSent != 0 {
		t.Errorf("nothing can be sent without a socket: sent %d gratuitous %d", s.AdvertsSent, s.GratuitousSent)
	}
	if s.AdvertInterval != "1s" {
		t.Errorf("advert_interval %q, want 1s", s.AdvertInterval)
	}
	want := map[string]Tracker{"script/chk": {Name: "chk", Kind: "script", Up: true, Weight: -20},
		"interface/lo": {Name: "lo", Kind: "interface", Up: true, Weight: 5}}
	if len(s.Trackers) != len(want) {
		t.Fatalf("trackers %+v, want %v", s.Trackers, want)
	}
	for _, tr := range s.Trackers {
		if want[tr.Kind+"/"+tr.Name] != tr {
			t.Errorf("tracker %+v, want %+v", tr, want[tr.Kind+"/"+tr.Name])
		}
	}
	d.handle(event{kind: evScript, name: "chk", ok: false})
	d.publish()
	for _, tr := range d.Status()[0].Trackers {
		if tr.Kind == "script" && tr.Up {
			t.Error("failed script still reported up")
		}
	}
	b, _ := json.Marshal(s)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"adverts_sent", "adverts_received", "gratuitous_sent", "advert_interval", "trackers"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON field %s missing: %s", k, b)
		}
	}
}
