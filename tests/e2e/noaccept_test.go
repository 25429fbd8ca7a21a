package e2e

import (
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
)

// no_accept as keepalived enforces it (docs/keepalived.md#no-accept): a
// master under vrrp_strict without `accept` holds the VIP (it answers ARP
// and neighbour discovery) but the VIP carries no traffic — ping and TCP to
// it get no answer, while the director's own address still answers. With
// `accept` (VRRPv3: keepalived resets accept under strict VRRPv2) they are
// answered. Stopping halod removes the nftables table; a table a killed
// halod left is replaced at the next start.
func TestNoAccept(t *testing.T) {
	v := newVRRPLab(t, 197)
	testkit.Require(t, "nft", "ping")
	if out, err := v.n1.Exec("nft", "list", "tables"); err != nil {
		t.Skipf("no nftables support in this kernel: nft list tables: %v: %s", err, out)
	}
	const (
		vip   = "10.197.0.100"
		vip6  = "fd00:197::100"
		own   = "10.197.0.1"
		own6  = "fd00:197::1"
		port  = 8197
		table = "keepalived"
	)
	serveTCP(t, v.n1, port)
	conf := func(extra string) string {
		return fmt.Sprintf(`global_defs {
  router_id n1
  vrrp_strict
  vrrp_garp_master_delay 0
}
vrrp_instance V4 {
  state BACKUP
  interface eth0
  virtual_router_id 97
  priority 100
  advert_int 1
%s
  virtual_ipaddress {
    %s/24
  }
}
vrrp_instance V6 {
  state BACKUP
  interface eth0
  virtual_router_id 98
  priority 100
  advert_int 1
  version 3
%s
  virtual_ipaddress {
    fe80::197:100/64
    %s/64
  }
}
`, extra, vip, strings.ReplaceAll(extra, "version 3", ""), vip6)
	}

	t.Run("strict", func(t *testing.T) {
		p := startHalod(t, v.n1, writeFile(t, "strict.conf", conf("")))
		waitMaster(t, v.n1, vip, vip6)
		if set := nftSet(v.n1, "ip", table); !strings.Contains(set, vip) {
			t.Errorf("VIP not in the drop set:\n%s", set)
		}
		if set := nftSet(v.n1, "ip6", table); !strings.Contains(set, vip6) || !strings.Contains(set, "fe80::197:100") {
			t.Errorf("IPv6 VIPs not in the drop set:\n%s", set)
		}
		assertAnswers(t, v.cl, own, own6, port, true)
		assertAnswers(t, v.cl, vip, vip6, port, false)
		// The VIP is held: ARP and ND for it are answered (keepalived lets
		// neighbour discovery through), only its traffic is dropped.
		if neighMAC(v.cl, vip) != v.mac1 {
			t.Errorf("client has no ARP entry for the VIP pointing at n1: %q", neighMAC(v.cl, vip))
		}
		if neighMAC(v.cl, vip6) != v.mac1 {
			t.Errorf("client has no neighbour entry for the IPv6 VIP pointing at n1: %q", neighMAC(v.cl, vip6))
		}
		stopHalod(t, p)
		for _, fam := range []string{"ip", "ip6"} {
			if out, err := v.n1.Exec("nft", "list", "table", fam, table); err == nil {
				t.Errorf("table %s %s left after halod stopped:\n%s", fam, table, out)
			}
		}
	})

	t.Run("same-as-keepalived", func(t *testing.T) {
		// keepalived 2.2.7 and halod, each alone as master with the same
		// config, leave the same ruleset (nft list ruleset, byte for byte
		// but for counter values), and both remove it on SIGTERM: with the
		// defaults, with a table name, priority, counters and link-local
		// VIPs keyed by name (dont_track_primary), and with use_vmac, which
		// adds keepalived's VMAC map and group-report rules to the tables,
		// with vrrp_strict and without it (the table then holds only those),
		// and for an IPv4 instance with an IPv6 excluded VIP
		// (docs/keepalived.md#use-vmac-nftables).
		requireKeepalived(t)
		counters := regexp.MustCompile(`packets [0-9]+ bytes [0-9]+`)
		settings := strings.Replace(conf(""), "  vrrp_strict\n",
			"  vrrp_strict\n  nftables halo_e2e\n  nftables_priority -5\n  nftables_counters\n", 1)
		settings = strings.Replace(settings, "  version 3\n", "  version 3\n  dont_track_primary\n", 1)
		vmacStrict := conf("  use_vmac")
		vmacOnly := strings.Replace(vmacStrict, "  vrrp_strict\n", "", 1)
		// An IPv4 instance with an IPv6 excluded VIP: its VMAC goes in
		// both tables' maps.
		vmacMixed := fmt.Sprintf(`global_defs {
  router_id n1
  vrrp_garp_master_delay 0
}
vrrp_instance V4 {
  state BACKUP
  interface eth0
  virtual_router_id 97
  priority 100
  advert_int 1
  use_vmac
  virtual_ipaddress {
    %s/24
  }
  virtual_ipaddress_excluded {
    %s/64
  }
}
`, vip, vip6)
		for i, text := range []string{conf(""), settings, vmacStrict, vmacOnly, vmacMixed} {
			mark := "@vips"
			if i >= 2 {
				mark = "@vmac_map"
			}
			c := writeFile(t, fmt.Sprintf("same%d.conf", i), text)
			k := startKeepalived(t, v.n1, c)
			waitMaster(t, v.n1, vip, vip6)
			want, _ := v.n1.Exec("nft", "list", "ruleset")
			stopHalod(t, k)
			if out, _ := v.n1.Exec("nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
				t.Fatalf("keepalived left a ruleset:\n%s", out)
			}
			if waitFor(5*time.Second, func() bool { return !hasAddr(v.n1, vip) }) < 0 {
				t.Fatal("keepalived left the VIP")
			}
			p := startHalod(t, v.n1, c)
			waitMaster(t, v.n1, vip, vip6)
			got, _ := v.n1.Exec("nft", "list", "ruleset")
			got, want = counters.ReplaceAllString(got, "C"), counters.ReplaceAllString(want, "C")
			if got != want || !strings.Contains(want, mark) {
				t.Errorf("config %d: halod's ruleset differs from keepalived's.\nkeepalived:\n%s\nhalod:\n%s", i, want, got)
			}
			stopHalod(t, p)
		}
	})

	t.Run("crash", func(t *testing.T) {
		// SIGKILL leaves the table; the next start replaces it (an element
		// only the old table had is gone) before blocking the VIP again.
		c := writeFile(t, "crash.conf", conf(""))
		p := startHalod(t, v.n1, c)
		waitMaster(t, v.n1, vip)
		p.Signal(syscall.SIGKILL)
		p.Wait(5 * time.Second)
		const marker = "10.197.0.222"
		if out, err := v.n1.Exec("nft", "add", "element", "ip", table, "vips", "{ "+marker+" }"); err != nil {
			t.Fatalf("the killed halod left no table to add to: %v: %s", err, out)
		}
		p = startHalod(t, v.n1, c)
		if waitFor(10*time.Second, func() bool {
			set := nftSet(v.n1, "ip", table)
			return !strings.Contains(set, marker) && strings.Contains(set, vip)
		}) < 0 {
			t.Fatalf("stale table not replaced:\n%s", nftSet(v.n1, "ip", table))
		}
		assertAnswers(t, v.cl, vip, "", port, false)
		stopHalod(t, p)
	})

	t.Run("strict-v2-accept-reset", func(t *testing.T) {
		// keepalived: "accept mode for VRRP version 2 does not comply with
		// RFC3768 - resetting"; the VIP still drops traffic.
		p := startHalod(t, v.n1, writeFile(t, "v2accept.conf", conf("  accept")))
		waitMaster(t, v.n1, vip, vip6)
		assertAnswers(t, v.cl, vip, "", port, false)
		assertAnswers(t, v.cl, "", vip6, port, true) // V6 is VRRPv3: accept holds
		if !strings.Contains(p.Output(), "RFC3768") {
			t.Errorf("no reset warning in halod's output:\n%s", p.Output())
		}
		stopHalod(t, p)
	})

	t.Run("accept", func(t *testing.T) {
		p := startHalod(t, v.n1, writeFile(t, "accept.conf", conf("  version 3\n  accept")))
		waitMaster(t, v.n1, vip, vip6)
		assertAnswers(t, v.cl, vip, vip6, port, true)
		if out, err := v.n1.Exec("nft", "list", "table", "ip", table); err == nil {
			t.Errorf("accept mode installed a table:\n%s", out)
		}
		stopHalod(t, p)
	})
}

func waitMaster(t *testing.T, ns *lab.NS, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if waitFor(10*time.Second, func() bool { return hasAddr(ns, a) }) < 0 {
			t.Fatalf("%s never added: not master", a)
		}
	}
}

// stopHalod stops a daemon (halod or keepalived) with SIGTERM and waits.
func stopHalod(t *testing.T, p *lab.Proc) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	if exited, _ := p.Wait(10 * time.Second); !exited {
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.Name, p.Output())
	}
}

// nftSet is the drop set "vips" (and, for ip6, the link-local one) as nft
// lists it, or the error.
func nftSet(ns *lab.NS, fam, table string) string {
	out, err := ns.Exec("nft", "list", "table", fam, table)
	if err != nil {
		return fmt.Sprintf("nft list table %s %s: %v: %s", fam, table, err, out)
	}
	return out
}

// serveTCP accepts connections on port in ns and writes "ok" to each; the
// listening socket is made inside the namespace.
func serveTCP(t *testing.T, ns *lab.NS, port int) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "ok\n")
			c.Close()
		}
	}()
}

// assertAnswers checks ping and a TCP exchange from the client to each
// non-empty address: answered when want, no answer at all otherwise.
func assertAnswers(t *testing.T, cl *lab.NS, a4, a6 string, port int, want bool) {
	t.Helper()
	for _, a := range []string{a4, a6} {
		if a == "" {
			continue
		}
		out, _ := exec.Command("ip", "netns", "exec", cl.Name, "ping", "-c", "2", "-i", "0.2", "-W", "1", a).CombinedOutput()
		got := !strings.Contains(string(out), " 0 received") && strings.Contains(string(out), "received")
		if got != want {
			t.Errorf("ping %s: answered=%v, want %v:\n%s", a, got, want, out)
		}
		var reply string
		err := cl.Do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(a, fmt.Sprint(port)), 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			b, err := io.ReadAll(c)
			reply = string(b)
			return err
		})
		if got := err == nil && reply == "ok\n"; got != want {
			t.Errorf("TCP %s:%d: answered=%v (reply %q, err %v), want %v", a, port, got, reply, err, want)
		}
	}
}
