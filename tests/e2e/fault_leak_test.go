package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Reloads must not leak goroutines: halod (VRRP instances, virtual servers
// with TCP and HTTP checkers) is reloaded between two configurations that
// add and remove an instance, a virtual server and a checker, 30 times.
// go_goroutines from its own /metrics, taken at config A after 2 reloads
// and after 30, may differ by a small slack only (one goroutine left per
// reload would add 14 at least).
func TestFaultNoGoroutineLeakAcrossReloads(t *testing.T) {
	w := newWLab(t, 186, "n1", "r1")
	n1 := w.ns["n1"]
	r1 := &wReal{ns: w.ns["r1"], name: "r1", addr: "0.0.0.0:80"}
	r1.start(t)
	real := w.ip(2)
	confA := fmt.Sprintf(`global_defs {
  router_id n1
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 86
  priority 200
  advert_int 0.5
  version 3
  virtual_ipaddress {
    10.186.0.100/24
  }
}
virtual_server 10.186.0.100 80 {
  delay_loop 1
  lb_kind DR
  protocol TCP
  real_server %s 80 {
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
`, real)
	confB := confA + fmt.Sprintf(`vrrp_instance VI_2 {
  state BACKUP
  interface eth0
  virtual_router_id 87
  priority 100
  advert_int 0.5
  version 3
  virtual_ipaddress {
    10.186.0.101/24
  }
}
virtual_server 10.186.0.101 8080 {
  delay_loop 1
  lb_kind DR
  protocol TCP
  real_server %s 80 {
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
    }
  }
}
`, real)
	conf := filepath.Join(t.TempDir(), "halod.conf")
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(confA)
	sock := filepath.Join(t.TempDir(), "halod.sock")
	p := startHalod(t, n1, conf, "--control", sock, "--metrics-addr", "127.0.0.1:9650")
	if waitFor(10*time.Second, func() bool { st := haloctlStatus(t, sock); return st != nil && st.Ready }) < 0 {
		t.Fatalf("halod never ready:\n%s", p.Output())
	}
	// goroutines is the smallest of a few samples once the checkers have
	// run: a scrape's own goroutines and a checker in flight are noise.
	goroutines := func() float64 {
		time.Sleep(1500 * time.Millisecond)
		lowest := -1.0
		for i := 0; i < 5; i++ {
			v := metricValue(scrapeNS(t, n1), "go_goroutines")
			if v < 0 {
				t.Fatal("no go_goroutines in /metrics")
			}
			if lowest < 0 || v < lowest {
				lowest = v
			}
			time.Sleep(200 * time.Millisecond)
		}
		return lowest
	}
	const reloads = 30
	var base float64
	for i := 1; i <= reloads; i++ {
		if i%2 == 1 {
			write(confB)
		} else {
			write(confA)
		}
		if out, err := haloctl(t, sock, "reload"); err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
		if i == 1 {
			// B really runs: the second instance and server are there.
			if waitFor(5*time.Second, func() bool {
				st := haloctlStatus(t, sock)
				return st != nil && len(st.VRRP) == 2 && len(st.VirtualServers) == 2
			}) < 0 {
				t.Fatalf("config B not running after reload: %+v", haloctlStatus(t, sock))
			}
		}
		if i == 2 {
			base = goroutines()
		}
	}
	end := goroutines()
	st := haloctlStatus(t, sock)
	t.Logf("goroutines at config A after 2 reloads: %v, after %d: %v (reloads counted %d, failed %d)", base, reloads, end, st.Config.Reloads, st.Config.FailedReloads)
	if st.Config.Reloads < reloads || st.Config.FailedReloads != 0 {
		t.Fatalf("reloads %d failed %d, want %d and 0", st.Config.Reloads, st.Config.FailedReloads, reloads)
	}
	if len(st.VRRP) != 1 || len(st.VirtualServers) != 1 {
		t.Fatalf("config A not running at the end: %d instances, %d virtual servers", len(st.VRRP), len(st.VirtualServers))
	}
	// The measure sees what a reload starts: config B runs more.
	write(confB)
	if out, err := haloctl(t, sock, "reload"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if b := goroutines(); b <= end {
		t.Fatalf("config B runs %v goroutines, config A %v: the count does not see the instances and checkers", b, end)
	} else {
		t.Logf("config B: %v goroutines", b)
	}
	if end > base+5 {
		t.Fatalf("goroutines grew from %v to %v over %d reloads: a leak", base, end, reloads-2)
	}
}
