package bgp

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/pkg/config"
)

func TestFromConfig(t *testing.T) {
	if FromConfig(nil) != nil {
		t.Fatal("no bgp block must mean no speaker")
	}
	c := FromConfig(&config.BGP{LocalAS: 65010, ListenPort: -1, Announce: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")},
		Neighbors: []*config.BGPNeighbor{{Addr: netip.MustParseAddr("10.0.0.1"), RemoteAS: 65000, HoldTime: 3,
			Password: "pw", NextHopSelf: true, Port: 1179}}})
	n := c.Neighbors[0]
	if c.LocalAS != 65010 || c.ListenPort != -1 || len(c.Announce) != 1 || n.Password != "pw" || n.HoldTime != 3 ||
		!n.NextHopSelf || n.Port != 1179 || n.RemoteAS != 65000 {
		t.Fatalf("FromConfig = %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	nb := func(mod func(*Neighbor)) Config {
		n := Neighbor{Addr: netip.MustParseAddr("10.0.0.1"), RemoteAS: 65000}
		mod(&n)
		return Config{LocalAS: 65010, ListenPort: -1, Neighbors: []Neighbor{n}}
	}
	bad := map[string]Config{
		"no local_as":         {ListenPort: -1, Neighbors: []Neighbor{{Addr: netip.MustParseAddr("10.0.0.1"), RemoteAS: 1}}},
		"no neighbor":         {LocalAS: 1, ListenPort: -1},
		"IPv6 router id":      {LocalAS: 1, ListenPort: -1, RouterID: netip.MustParseAddr("::1"), Neighbors: nb(func(*Neighbor) {}).Neighbors},
		"listen_port 0":       {LocalAS: 1, Neighbors: nb(func(*Neighbor) {}).Neighbors},
		"hold_time 2":         nb(func(n *Neighbor) { n.HoldTime = 2 }),
		"no remote_as":        nb(func(n *Neighbor) { n.RemoteAS = 0 }),
		"81-byte password":    nb(func(n *Neighbor) { n.Password = strings.Repeat("x", 81) }),
		"neighbor without IP": nb(func(n *Neighbor) { n.Addr = netip.Addr{} }),
	}
	for name, c := range bad {
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	twice := nb(func(*Neighbor) {})
	twice.Neighbors = append(twice.Neighbors, twice.Neighbors[0])
	if err := twice.validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate neighbor: %v", err)
	}
	if _, err := New(Config{ListenPort: -1}, nil); err == nil {
		t.Error("New accepted an empty config")
	}
}

// The password must not survive into a log line, whether in the message, a
// string attribute, a struct printed with %v, a group or WithAttrs.
func TestRedactHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(&redactHandler{h: slog.NewTextHandler(&buf, nil), secrets: []string{"hunter2"}})
	type conf struct{ AuthPassword string }
	log.With("pre", "k=hunter2").Info("password hunter2 in message", "s", "hunter2", "any", conf{"hunter2"},
		slog.Group("g", "inner", "xhunter2x"), "n", 3)
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("secret leaked: %s", out)
	}
	if strings.Count(out, mask) != 5 || !strings.Contains(out, "n=3") {
		t.Fatalf("unexpected redaction: %s", out)
	}
}

func TestUpdatesTotalMonotonic(t *testing.T) {
	st := statusState{base: map[string]uint64{}, last: map[string]uint64{}}
	steps := []struct {
		cur  map[string]uint64
		want uint64
	}{
		{map[string]uint64{"a": 3, "b": 1}, 4},
		{map[string]uint64{"a": 5, "b": 1}, 6},
		{map[string]uint64{"a": 1, "b": 2}, 8}, // a's session reset: its 5 are kept
		{map[string]uint64{"b": 2}, 8},         // a down: nothing lost
	}
	for i, s := range steps {
		if got := st.total(s.cur); got != s.want {
			t.Fatalf("step %d: total %d, want %d", i, got, s.want)
		}
	}
}
