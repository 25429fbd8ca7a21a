package diff

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// conf is a keepalived.conf with the FIFO and notify script of the node.
func conf(n *net, global string, blocks ...string) string {
	return fmt.Sprintf("global_defs {\n  router_id r%d\n  enable_script_security\n  script_user root\n  notify_fifo %s\n%s\n}\n%s",
		n.Sub, n.FIFO, global, strings.Join(blocks, "\n"))
}

// instance is a vrrp_instance on eth0 with the generic notify script.
func instance(n *net, name string, vrid, prio int, body string, vips ...string) string {
	return fmt.Sprintf(`vrrp_instance %s {
  state BACKUP
  interface eth0
  virtual_router_id %d
  priority %d
  advert_int 1
  notify "%s"
%s
  virtual_ipaddress {
    %s
  }
}
`, name, vrid, prio, n.Notify, body, strings.Join(vips, "\n    "))
}

// peer is the keepalived peer: the same instance without scripts or FIFO.
func peer(n *net, body string, instances ...[3]any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n  router_id peer%d\n}\n", n.Sub)
	for _, in := range instances {
		fmt.Fprintf(&b, "vrrp_instance %s {\n  state BACKUP\n  interface eth0\n  virtual_router_id %d\n  priority %d\n  advert_int 1\n%s\n  virtual_ipaddress {\n    %s\n  }\n}\n",
			in[0], in[1], in[2], body, n.V4(100+in[1].(int)-51)+"/24")
	}
	return b.String()
}

func setLink(state string) func(t *testing.T, n *net) {
	return func(t *testing.T, n *net) { n.nutNS.IP("link", "set", "trk0", state) }
}

func flag(on bool) func(t *testing.T, n *net) {
	return func(t *testing.T, n *net) {
		if on {
			must(t, os.WriteFile(n.Flag, nil, 0o644))
		} else {
			must(t, os.Remove(n.Flag))
		}
	}
}

// A sync group whose member tracks an interface: the interface going down
// takes the whole group to FAULT (group notify and GROUP FIFO line), up
// brings both back and they preempt again.
func TestDiffSyncGroupTrackInterface(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "",
				instance(n, "VI_1", 51, 150, "  track_interface {\n    trk0\n  }", n.V4(100)+"/24"),
				instance(n, "VI_2", 52, 150, "", n.V4(101)+"/24"),
				fmt.Sprintf("vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n  notify \"%s\"\n}\n", n.Notify))
		},
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}, [3]any{"VI_2", 52, 100}) },
		steps: []step{
			{"start", nil, stableWait},
			{"tracked interface down", setLink("down"), 3 * time.Second},
			{"tracked interface up", setLink("up"), stableWait},
		},
	}, 120)
}

// A track_script weight moves the node under and over the peer's priority.
func TestDiffTrackScriptWeight(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "  vrrp_notify_priority_changes",
				fmt.Sprintf("vrrp_script chk {\n  script \"%s\"\n  interval 1\n  weight 60\n}\n", n.Track),
				instance(n, "VI_1", 51, 100, "  track_script {\n    chk\n  }", n.V4(100)+"/24"))
		},
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 130}) },
		steps: []step{
			{"start", nil, stableWait},
			{"script fails", flag(false), stableWait},
			{"script recovers", flag(true), stableWait},
		},
		quantum: time.Second, // interval 1
	}, 122)
}

// preempt_delay: a higher priority node joining a running master waits.
func TestDiffPreemptDelay(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "", instance(n, "VI_1", 51, 150, "  preempt_delay 4", n.V4(100)+"/24"))
		},
		peer:      func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		peerFirst: true,
		steps: []step{
			{"peer alone", nil, 5 * time.Second},
			{"node joins", func(t *testing.T, n *net) { n.startNUT() }, 5 * time.Second},
			{"preempt delay over", nil, 5 * time.Second},
		},
		quantum: time.Second, // advert_int 1: preemption is decided on an advert
	}, 124)
}

// nopreempt: a higher priority node joining a running master stays BACKUP.
func TestDiffNoPreempt(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "", instance(n, "VI_1", 51, 150, "  nopreempt", n.V4(100)+"/24"))
		},
		peer:      func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		peerFirst: true,
		steps: []step{
			{"peer alone", nil, 5 * time.Second},
			{"node joins", func(t *testing.T, n *net) { n.startNUT() }, 8 * time.Second},
		},
	}, 126)
}

// GARP settings: delay 0 means one burst; repeat counts; a second burst
// after the delay.
func TestDiffGARPZeroDelay(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 3",
				instance(n, "VI_1", 51, 150, "  virtual_ipaddress_excluded {\n    "+n.V6(100)+"/64\n  }", n.V4(100)+"/24"))
		},
		peer:  func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{{"start", nil, 9 * time.Second}},
	}, 128)
}

func TestDiffGARPRepeatAndDelay(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "  vrrp_garp_master_delay 2\n  vrrp_garp_master_repeat 2",
				instance(n, "VI_1", 51, 150, "  garp_master_refresh 3\n  garp_master_refresh_repeat 1", n.V4(100)+"/24"))
		},
		peer:  func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{{"start", nil, 11 * time.Second}},
	}, 130)
}

// virtual_routes follow the VIPs, with table, metric, src and via.
func TestDiffVirtualRoutes(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "", instance(n, "VI_1", 51, 150, fmt.Sprintf(`  virtual_routes {
    192.168.77.0/24 via %s dev eth0
    192.168.78.0/24 dev eth0 table 100 metric 5
    src %s 192.168.79.0/24 dev eth0
  }
  track_interface {
    trk0
  }`, n.V4(254), n.V4(100)), n.V4(100)+"/24"))
		},
		peer:   func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		routes: []string{"192.168.77.0/24", "192.168.78.0/24", "192.168.79.0/24"},
		steps: []step{
			{"master", nil, stableWait},
			{"tracked interface down", setLink("down"), 3 * time.Second},
		},
	}, 132)
}

// Unicast peers: the node is backup, the peer stops, the node takes over.
func TestDiffUnicast(t *testing.T) {
	uc := func(self, other string) string {
		return fmt.Sprintf("  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }", self, other)
	}
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "", instance(n, "VI_1", 51, 100, uc(n.NUT, n.Peer), n.V4(100)+"/24"))
		},
		peer: func(n *net) string { return peer(n, uc(n.Peer, n.NUT), [3]any{"VI_1", 51, 150}) },
		steps: []step{
			{"backup", nil, stableWait},
			{"peer link down", func(t *testing.T, n *net) { n.peerNS.IP("link", "set", "eth0", "down") }, stableWait},
		},
	}, 134)
}

// v3 against a peer that sends the RFC 5798 checksum without the IPv4
// pseudo-header (Cisco, Juniper, RFC 9568; halod with v3_checksum_as_v2 plays
// it, since keepalived 2.2.7 cannot). keepalived 2.2.7 drops every advert
// as a bad checksum and both nodes are master; halod accepts every
// checksum form and follows the peer's, so it stays backup. This is a
// deliberate difference (README: VRRP).
func TestDiffV3ChecksumAsV2Peer(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "", instance(n, "VI_1", 51, 100, "  version 3", n.V4(100)+"/24"))
		},
		peer:      func(n *net) string { return peer(n, "  version 3\n  v3_checksum_as_v2", [3]any{"VI_1", 51, 150}) },
		peerHalod: true,
		steps: []step{
			{"peer is master", nil, stableWait},
			{"peer link down", func(t *testing.T, n *net) { n.peerNS.IP("link", "set", "eth0", "down") }, stableWait},
		},
		deliberate: "halod accepts v3 checksums without the pseudo-header",
		check: func(t *testing.T, h []phase) {
			// The node may be master for a moment before the peer (started
			// a second later) is heard; it must end the phase backup.
			if f := h[0].FIFO; len(h[0].VIPs) != 0 || len(f) == 0 || f[len(f)-1] != `INSTANCE "VI_1" BACKUP 100` {
				t.Errorf("halod did not follow the peer: %+v", h[0])
			}
			if len(h[1].VIPs) != 1 || !slices.Equal(h[1].FIFO, []string{`INSTANCE "VI_1" MASTER 100`}) {
				t.Errorf("halod did not take over from the silent peer: %+v", h[1])
			}
		},
	}, 136)
}

// SIGHUP reload: an unchanged instance is left alone, a changed one keeps
// its state and takes the new priority and VIPs, a removed one stops
// (DELETED with notify_deleted), a new one starts.
func TestDiffReload(t *testing.T) {
	vi1 := func(n *net) string { return instance(n, "VI_1", 51, 150, "", n.V4(100)+"/24") }
	first := func(n *net) string {
		return conf(n, "", vi1(n), instance(n, "VI_2", 52, 150, "", n.V4(101)+"/24"),
			instance(n, "VI_3", 53, 150, "  notify_deleted", n.V4(102)+"/24"))
	}
	second := func(n *net) string {
		return conf(n, "", vi1(n), instance(n, "VI_2", 52, 50, "", n.V4(101)+"/24", n.V4(111)+"/24"),
			instance(n, "VI_4", 54, 150, "", n.V4(104)+"/24"))
	}
	runScenario(t, scenario{
		nut: first,
		peer: func(n *net) string {
			return peer(n, "", [3]any{"VI_1", 51, 100}, [3]any{"VI_2", 52, 100}, [3]any{"VI_3", 53, 100})
		},
		steps: []step{
			{"start", nil, stableWait},
			{"reload", func(t *testing.T, n *net) { n.reload(t, second(n)) }, stableWait},
		},
	}, 138)
}
