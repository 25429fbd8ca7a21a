package e2e

// Helpers of the wiring tests (wiring_*_test.go). Those tests pin the paths
// that connect halo's parts — a tracker's weight reaching the election, a
// sync group's members following each other, preemption settings,
// ha_suspend, omega, quorum and the sorry server, the checker's retry
// timing — with real halod processes, keepalived peers and real servers in
// namespaces. Their expectations come from keepalived's documented
// behaviour (docs/keepalived.md) and the scenario's design, never from
// halod's own log or status: VIPs are read from the kernel, checks are
// counted at the real server, notifications by the scripts they run.
// Each path has a planted bug in tests/mutants/mutants.txt that its test
// must catch (`make mutants`).

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
)

// wLab is a bridge with one namespace per tag; the i-th tag gets
// 10.<subnet>.0.<i+1>/24 on eth0.
type wLab struct {
	l      *lab.Lab
	sw     *lab.Switch
	subnet int
	ns     map[string]*lab.NS
}

func newWLab(t *testing.T, subnet int, tags ...string) *wLab {
	t.Helper()
	lab.RequireRoot(t)
	l := lab.New(t)
	w := &wLab{l: l, sw: l.Switch("sw"), subnet: subnet, ns: map[string]*lab.NS{}}
	for i, tag := range tags {
		n := l.NS(tag)
		w.sw.Plug(n, "eth0")
		n.Addr("eth0", w.ip(i+1)+"/24")
		w.ns[tag] = n
	}
	return w
}

func (w *wLab) ip(host int) string { return fmt.Sprintf("10.%d.0.%d", w.subnet, host) }

// holders names the namespaces (of those given) that have addr configured,
// "none" when none has.
func holders(addr string, nodes ...*lab.NS) string {
	var on []string
	for _, n := range nodes {
		if hasAddr(n, addr) {
			on = append(on, n.Tag)
		}
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, "+")
}

// waitHolder waits until exactly want holds addr and fails the test if that
// does not happen within d. It returns how long it took.
func waitHolder(t *testing.T, d time.Duration, addr, want, why string, nodes ...*lab.NS) time.Duration {
	t.Helper()
	took := waitFor(d, func() bool { return holders(addr, nodes...) == want })
	if took < 0 {
		t.Fatalf("%s: %s held by %s after %v, want %s", why, addr, holders(addr, nodes...), d, want)
	}
	return took
}

// holdFor fails the test as soon as addr is held by anything but want,
// checking every 50 ms for d.
func holdFor(t *testing.T, d time.Duration, addr, want, why string, nodes ...*lab.NS) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if got := holders(addr, nodes...); got != want {
			t.Fatalf("%s: %s held by %s, want %s throughout %v", why, addr, got, want, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startKeepalivedPeer runs Debian's keepalived 2.2.7 (VRRP child only) in
// ns with private pid files (docs/lab.md#running-keepalived).
func startKeepalivedPeer(t *testing.T, ns *lab.NS, conf string) *lab.Proc {
	t.Helper()
	testkit.Require(t, "keepalived")
	dir := t.TempDir()
	p := ns.Start("keepalived", "-n", "-l", "-D", "-G", "-P", "-f", conf,
		"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "k-vrrp.pid"))
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("keepalived in %s output:\n%s", ns.Tag, p.Output())
		}
	})
	return p
}

// wInstance is a vrrp_instance block on eth0, advert_int 1, BACKUP.
func wInstance(name string, vrid, prio int, vip, extra string) string {
	return fmt.Sprintf(`vrrp_instance %s {
  state BACKUP
  interface eth0
  virtual_router_id %d
  priority %d
  advert_int 1
%s
  virtual_ipaddress {
    %s/24
  }
}
`, name, vrid, prio, extra, vip)
}

// wGlobal is a global_defs block that lets root run the test's scripts.
func wGlobal(router string) string {
	return fmt.Sprintf(`global_defs {
  router_id %s
  script_user root
  enable_script_security
  vrrp_garp_master_delay 1
  vrrp_garp_master_repeat 1
}
`, router)
}

// wScript writes an executable shell script into a fresh directory only
// root can write (script security refuses anything else).
func wScript(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// hit is one request a wReal served.
type hit struct {
	at   time.Time
	from string
	path string
}

// wReal is an HTTP real server in its own namespace. It records every
// request (the health checks among them), answers with its name, and
// answers /healthz with 500 while failing is set.
type wReal struct {
	ns   *lab.NS
	name string
	addr string // ip:port to listen on

	mu      sync.Mutex
	l       net.Listener
	hits    []hit
	failing bool
}

func (r *wReal) start(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ns.Do(func() (err error) { r.l, err = net.Listen("tcp", r.addr); return err }); err != nil {
		t.Fatal(err)
	}
	go http.Serve(r.l, http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		host, _, _ := net.SplitHostPort(req.RemoteAddr)
		r.mu.Lock()
		r.hits = append(r.hits, hit{at: time.Now(), from: host, path: req.URL.Path})
		failing := r.failing
		r.mu.Unlock()
		if req.URL.Path == "/healthz" && failing {
			rw.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprintf(rw, "%s\n", r.name)
	}))
	t.Cleanup(r.stop)
}

func (r *wReal) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.l != nil {
		r.l.Close()
		r.l = nil
	}
}

func (r *wReal) setFailing(f bool) {
	r.mu.Lock()
	r.failing = f
	r.mu.Unlock()
}

// checks returns the /healthz requests received at or after since.
func (r *wReal) checks(since time.Time) []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []hit
	for _, h := range r.hits {
		if h.path == "/healthz" && !h.at.Before(since) {
			out = append(out, h)
		}
	}
	return out
}

// readLines returns the lines of a file the test's scripts append to.
func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
