// Package scenario is one end-to-end definition of halo's load balancing
// that runs against either data plane: a client reaches three real servers
// through a VIP served by halod; a real whose health check fails stops
// getting new connections and comes back when it recovers.
//
// The XDP backend runs it on the host (`make test`); the IPVS backend runs
// it inside the Debian kernel of `make test-vm`, in NAT, DR and TUN. Only
// the data-plane block of the config and a few lines of setup differ.
package scenario

import (
	"fmt"
	"io"
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
	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
)

// Backend is what differs between the data planes.
type Backend struct {
	Name string // xdp or ipvs, as --dataplane spells it
	// Methods are the lb_kind values the backend forwards.
	Methods []string
	// Prepare runs after the topology is built and before halod starts.
	Prepare func(t *testing.T, s *Setup)
	// Args are extra halod flags.
	Args func(t *testing.T, s *Setup) []string
	// Table returns the kernel's view of the service for failure messages
	// and table checks ("" when the backend has no such view).
	Table func(t *testing.T, s *Setup) string
}

// Options vary the scenario.
type Options struct {
	Method      string // NAT, DR or TUN
	Inhibit     bool   // inhibit_on_failure: a failed real stays at weight 0
	Persistence int    // persistence_timeout in seconds (0: off)
	Subnet      int    // second octet of the lab's addresses, unique per test
}

// Setup is the built topology: one bridge with the director, the client
// (on a subnet of its own, so that NAT replies route back through the
// director) and three reals.
type Setup struct {
	Lab    *lab.Lab
	Switch *lab.Switch
	Dir    *lab.NS
	Client *lab.NS
	Reals  []*Real
	VIP    string
	// DirPort is the director's bridge port (in the switch namespace).
	DirPort string
	Opts    Options
	halod   *lab.Proc
	metrics string
	sock    string
}

// Real is one real server: an HTTP server in its namespace answering its
// name on / and 200 on /healthz.
type Real struct {
	NS   *lab.NS
	Name string
	IP   string
	mu   sync.Mutex
	ln   net.Listener
}

// Start (re)opens the real's listener.
func (r *Real) Start(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		return
	}
	if err := r.NS.Do(func() (err error) { r.ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		t.Fatal(err)
	}
	name := r.Name
	go http.Serve(r.ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, name) }))
}

// Stop closes the listener: connections and health checks are refused.
func (r *Real) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
}

// Build creates the topology for o.
func Build(t *testing.T, o Options) *Setup {
	t.Helper()
	lab.RequireRoot(t)
	l := lab.New(t)
	net0 := fmt.Sprintf("10.%d.0", o.Subnet)
	net1 := fmt.Sprintf("10.%d.1", o.Subnet)
	s := &Setup{Lab: l, Switch: l.Switch("sw"), Dir: l.NS("dir"), Client: l.NS("cl"), VIP: net0 + ".100", Opts: o}
	s.DirPort = s.Switch.Plug(s.Dir, "eth0")
	s.Dir.Addr("eth0", net0+".1/24")
	s.Dir.Addr("eth0", net1+".1/24")
	s.Dir.Addr("eth0", s.VIP+"/32")
	s.Dir.Sysctl("net.ipv4.ip_forward", "1")
	for _, k := range []string{"all", "default", "eth0"} {
		// Replies of DR and TUN reals come from the VIP, which the director
		// owns: without accept_local it drops them as martians. Forwarding
		// back out of eth0 must not teach the reals a shortcut.
		s.Dir.Sysctl("net.ipv4.conf."+k+".accept_local", "1")
		s.Dir.Sysctl("net.ipv4.conf."+k+".send_redirects", "0")
	}
	s.Switch.Plug(s.Client, "eth0")
	s.Client.Addr("eth0", net1+".2/24")
	s.Client.Route("default", net1+".1")
	for i := 1; i <= 3; i++ {
		r := &Real{NS: l.NS(fmt.Sprintf("r%d", i)), Name: fmt.Sprintf("real%d", i), IP: fmt.Sprintf("%s.%d", net0, 10+i)}
		s.Switch.Plug(r.NS, "eth0")
		r.NS.Addr("eth0", r.IP+"/24")
		r.NS.Route("default", net0+".1")
		switch o.Method {
		case "DR":
			r.NS.IP("addr", "add", s.VIP+"/32", "dev", "lo")
		case "TUN":
			r.NS.IP("link", "set", "tunl0", "up")
			r.NS.IP("addr", "add", s.VIP+"/32", "dev", "tunl0")
			for _, k := range []string{"all", "default", "tunl0"} {
				r.NS.Sysctl("net.ipv4.conf."+k+".rp_filter", "0")
			}
		}
		if o.Method != "NAT" {
			for _, k := range []string{"all", "eth0"} {
				r.NS.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
				r.NS.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
			}
		}
		r.Start(t)
		t.Cleanup(r.Stop)
		s.Reals = append(s.Reals, r)
	}
	return s
}

// Config is the keepalived.conf halod runs with.
func (s *Setup) Config(b Backend) string {
	var rs strings.Builder
	for _, r := range s.Reals {
		fmt.Fprintf(&rs, `  real_server %s 80 {
    weight 1
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 0
    }
  }
`, r.IP)
	}
	var extra string
	if s.Opts.Inhibit {
		extra += "  inhibit_on_failure\n"
	}
	if s.Opts.Persistence > 0 {
		extra += fmt.Sprintf("  persistence_timeout %d\n", s.Opts.Persistence)
	}
	return fmt.Sprintf(`global_defs {
  router_id dir
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lb_kind %s
  protocol TCP
%s%s}
dataplane {
  backend %s
  interface eth0
}
`, s.VIP, s.Opts.Method, extra, rs.String(), b.Name)
}

var (
	buildOnce sync.Once
	halodPath string
	buildErr  error
)

// Halod is the daemon under test: $HALOD (the VM has no Go toolchain) or
// one built once per test binary.
func Halod(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HALOD"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "halo-scenario-bin-")
		if err != nil {
			buildErr = err
			return
		}
		var bins []string
		bins, buildErr = testkit.Build(dir, "./cmd/halod")
		if buildErr == nil {
			halodPath = bins[0]
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return halodPath
}

// StartHalod writes the config and starts halod in the director.
func (s *Setup) StartHalod(t *testing.T, b Backend) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "halo.conf")
	if err := os.WriteFile(conf, []byte(s.Config(b)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.metrics = "127.0.0.1:9660"
	s.sock = filepath.Join(t.TempDir(), "halod.sock")
	args := []string{"-f", conf, "--dataplane", b.Name, "--control", s.sock,
		"--metrics-addr", s.metrics}
	if b.Args != nil {
		args = append(args, b.Args(t, s)...)
	}
	p := s.Dir.Start(Halod(t), args...)
	s.halod = p
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("halod output:\n%s", p.Output())
		}
	})
}

// StopHalod stops halod cleanly (SIGTERM) and waits for it.
func (s *Setup) StopHalod(t *testing.T) {
	t.Helper()
	s.halod.Stop()
}

// Get makes one new connection from the client to the VIP and returns the
// real that answered.
func (s *Setup) Get() (string, error) {
	return s.Client.HTTPGet(s.VIP+":80", "/", 2*time.Second)
}

// Spread makes n connections and counts the answers by real ("error" for
// failures).
func (s *Setup) Spread(n int) map[string]int {
	got := map[string]int{}
	for i := 0; i < n; i++ {
		body, err := s.Get()
		if err != nil {
			body = "error"
		}
		got[body]++
	}
	return got
}

// Metrics scrapes halod's /metrics inside the director.
func (s *Setup) Metrics(t *testing.T) string {
	t.Helper()
	var body string
	err := s.Dir.Do(func() error {
		c, err := net.DialTimeout("tcp", s.metrics, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\n\r\n")
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return body
}

// Dump asks halod's control socket for its dump (haloctl dump).
func (s *Setup) Dump(t *testing.T) *api.Dump {
	t.Helper()
	d, _, err := control.NewClient(s.sock).Dump()
	if err != nil {
		t.Fatalf("control dump: %v", err)
	}
	return d
}

// metricsOrEmpty is Metrics that returns "" while halod is not serving.
func (s *Setup) metricsOrEmpty() string {
	var body string
	_ = s.Dir.Do(func() error {
		c, err := net.DialTimeout("tcp", s.metrics, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(c)
		body = string(b)
		return nil
	})
	return body
}

// until polls cond every 200 ms for at most d.
func until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}
