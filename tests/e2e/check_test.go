package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/control"
)

// webReal is an HTTP server whose socket lives in a real server's
// namespace; Stop and Start take it out of and back into service.
type webReal struct {
	ns   *lab.NS
	addr string
	mu   sync.Mutex
	l    net.Listener
}

func (w *webReal) Start(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ns.Do(func() (err error) { w.l, err = net.Listen("tcp", w.addr); return err }); err != nil {
		t.Fatal(err)
	}
	name := w.ns.Tag
	go http.Serve(w.l, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "%s %s\n", name, r.URL.Path)
	}))
}

func (w *webReal) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.l != nil {
		w.l.Close()
		w.l = nil
	}
}

func haloctlStatus(t *testing.T, sock string) *control.Status {
	t.Helper()
	out, err := exec.Command(haloctlBin, "--control", sock, "status", "--json").Output()
	if err != nil {
		return nil
	}
	var st control.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("haloctl status --json: %v\n%s", err, out)
	}
	return &st
}

func realUp(st *control.Status, addr string) (up, found bool, lastErr string) {
	if st == nil {
		return false, false, ""
	}
	for _, vs := range st.VirtualServers {
		for _, r := range vs.Reals {
			if r.Address == addr {
				return r.Up, true, r.LastError
			}
		}
	}
	return false, false, ""
}

// halod with --dataplane none checks three HTTP reals in their own
// namespaces; a stopped real shows down within delay_loop + retry ×
// delay_before_retry (plus a margin), and comes back when restarted.
func TestCheckersTakeRealsOutAndBack(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	dir := l.NS("dir")
	sw.Plug(dir, "eth0")
	dir.Addr("eth0", "10.87.0.1/24")
	var reals []*webReal
	for i := 1; i <= 3; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i))
		sw.Plug(ns, "eth0")
		ip := fmt.Sprintf("10.87.0.%d", 10+i)
		ns.Addr("eth0", ip+"/24")
		w := &webReal{ns: ns, addr: ip + ":80"}
		w.Start(t)
		defer w.Stop()
		reals = append(reals, w)
	}
	conf := writeFile(t, "halod.conf", `
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 70
  priority 150
  virtual_ipaddress {
    10.87.0.100/24
  }
}
virtual_server 10.87.0.100 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.87.0.11 80 {
    HTTP_GET { url { path /healthz }
      connect_timeout 1
      retry 1
      delay_before_retry 1 }
  }
  real_server 10.87.0.12 80 {
    HTTP_GET { url { path /healthz }
      connect_timeout 1
      retry 1
      delay_before_retry 1 }
  }
  real_server 10.87.0.13 80 {
    HTTP_GET { url { path /healthz }
      connect_timeout 1
      retry 1
      delay_before_retry 1 }
  }
}
`)
	sock := filepath.Join(t.TempDir(), "halod.sock")
	startHalod(t, dir, conf, "--control", sock)

	allUp := func() bool {
		st := haloctlStatus(t, sock)
		for _, ip := range []string{"10.87.0.11", "10.87.0.12", "10.87.0.13"} {
			if up, found, _ := realUp(st, ip); !up || !found {
				return false
			}
		}
		return true
	}
	if waitFor(10*time.Second, allUp) < 0 {
		t.Fatalf("reals not all up: %+v", haloctlStatus(t, sock))
	}

	reals[1].Stop()
	// delay_loop 1 + retry 1 × delay_before_retry 1, plus a margin.
	took := waitFor(6*time.Second, func() bool { up, _, _ := realUp(haloctlStatus(t, sock), "10.87.0.12"); return !up })
	t.Logf("real 2 down after %v", took)
	if took < 0 || took > 2*time.Second+2*time.Second {
		t.Fatalf("real 2 not down in time (%v): %+v", took, haloctlStatus(t, sock))
	}
	_, _, lastErr := realUp(haloctlStatus(t, sock), "10.87.0.12")
	if !strings.Contains(lastErr, "refused") {
		t.Errorf("last_error %q, want a refused connection", lastErr)
	}
	if up, _, _ := realUp(haloctlStatus(t, sock), "10.87.0.11"); !up {
		t.Fatal("real 1 went down with real 2")
	}
	table, err := exec.Command(haloctlBin, "--control", sock, "status").CombinedOutput()
	if err != nil || !strings.Contains(string(table), "10.87.0.12:80") || !strings.Contains(string(table), "down") ||
		!strings.Contains(string(table), "VI_1") {
		t.Fatalf("haloctl status table:\n%s", table)
	}
	t.Logf("haloctl status:\n%s", table)

	reals[1].Start(t)
	took = waitFor(5*time.Second, func() bool { up, _, _ := realUp(haloctlStatus(t, sock), "10.87.0.12"); return up })
	t.Logf("real 2 back up after %v", took)
	if took < 0 {
		t.Fatal("real 2 did not come back")
	}
	st := haloctlStatus(t, sock)
	if len(st.VRRP) != 1 || st.VRRP[0].Name != "VI_1" || st.VRRP[0].VRID != 70 || len(st.VRRP[0].VIPs) != 1 {
		t.Fatalf("vrrp status %+v", st.VRRP)
	}
}
