package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

// Quorum loss brings in the sorry server, and quorum's return takes it out
// (docs/keepalived.md#quorum-and-sorry-server), seen by a client through
// the XDP data plane in DR mode. quorum 2 over two reals of weight 1: when
// r1's health check fails (r1 itself keeps answering), the live weight is 1
// < 2, so keepalived removes every real — the healthy r2 too — and installs
// the sorry server. Every new connection must then land on the sorry
// server; once r1 passes again they must land on r1 and r2 only. The
// quorum_down / quorum_up scripts must have run in that order.
func TestWiringQuorumSorryServer(t *testing.T) {
	w := newWLab(t, 119)
	vip := w.ip(100)
	node := func(tag string, host int) *lab.NS {
		n := w.l.NS(tag)
		port := w.sw.Plug(n, "eth0")
		if tag == "dir" {
			sink.AttachIn(t, w.sw.NS, port) // the director bounces frames with XDP_TX (docs/lab.md#veth-peer-needs-xdp)
		}
		n.Addr("eth0", fmt.Sprintf("%s/24", w.ip(host)))
		n.TxOff("eth0") // docs/lab.md#checksum-offload
		return n
	}
	dir, cl := node("dir", 1), node("cl", 2)
	reals := map[string]*wReal{}
	for i, name := range []string{"r1", "r2", "sorry"} {
		n := node(name, 11+i)
		n.IP("addr", "add", vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			n.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			n.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		r := &wReal{ns: n, name: name, addr: "0.0.0.0:80"}
		r.start(t)
		reals[name] = r
	}
	logf := filepath.Join(t.TempDir(), "quorum.log")
	note := wScript(t, "note.sh", fmt.Sprintf(`echo "$*" >> %s`, logf))
	rs := func(host int) string {
		return fmt.Sprintf(`  real_server %s 80 {
    weight 1
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 0
    }
  }
`, w.ip(host))
	}
	conf := writeFile(t, "dir.conf", wGlobal("dir")+fmt.Sprintf(`vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 80
  priority 255
  virtual_ipaddress {
    %s/24
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  quorum 2
  quorum_up "%s quorum_up"
  quorum_down "%s quorum_down"
  sorry_server %s 80
%s%s}
dataplane {
  backend xdp
  interface eth0
  xdp_mode native
}
`, vip, vip, note, note, w.ip(13), rs(11), rs(12)))
	startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(w.l.BPFFS(), "halo"))

	// served collects who answers n new connections from the client.
	served := func(n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			body, err := cl.HTTPGet(vip+":80", "/", 2*time.Second)
			if err != nil {
				body = "error: " + err.Error()
			}
			out = append(out, body)
		}
		return out
	}
	only := func(got []string, allowed ...string) bool {
		for _, g := range got {
			if !slices.Contains(allowed, g) {
				return false
			}
		}
		return true
	}
	var got []string
	if waitFor(20*time.Second, func() bool {
		got = served(10)
		return only(got, "r1", "r2") && slices.Contains(got, "r1") && slices.Contains(got, "r2")
	}) < 0 {
		t.Fatalf("quorum up: the VIP is not served by r1 and r2: %q", got)
	}

	reals["r1"].setFailing(true) // r1 fails its check but still answers "/"
	took := waitFor(10*time.Second, func() bool { got = served(10); return only(got, "sorry") })
	if took < 0 {
		t.Fatalf("quorum lost (live weight 1 < 2): want every connection on the sorry server, got %q", got)
	}
	t.Logf("quorum lost: sorry server serving after %v", took)
	if got = served(10); !only(got, "sorry") {
		t.Fatalf("quorum lost: connections leave the sorry server: %q", got)
	}

	reals["r1"].setFailing(false)
	took = waitFor(10*time.Second, func() bool {
		got = served(10)
		return only(got, "r1", "r2") && slices.Contains(got, "r1") && slices.Contains(got, "r2")
	})
	if took < 0 {
		t.Fatalf("quorum back: want r1 and r2 and no sorry server, got %q", got)
	}
	t.Logf("quorum back: reals serving after %v", took)

	// The scripts run once the data plane has the change (as keepalived
	// runs them after the IPVS update), so quorum_up may follow the
	// traffic by a moment.
	var lines []string
	if waitFor(3*time.Second, func() bool {
		lines = readLines(logf)
		i := slices.Index(lines, "quorum_down")
		return i >= 0 && slices.Contains(lines[i:], "quorum_up")
	}) < 0 {
		t.Fatalf("quorum scripts: %q, want quorum_down then quorum_up", lines)
	}
}
