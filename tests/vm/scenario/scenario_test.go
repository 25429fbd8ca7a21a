package scenario

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/sink"
	ipvsdp "github.com/halo-lb/halo/pkg/dataplane/ipvs"
)

var xdpBackend = Backend{
	Name:    "xdp",
	Methods: []string{"DR"},
	Prepare: func(t *testing.T, s *Setup) {
		// Frames the director bounces with XDP_TX need an XDP program on
		// the peer of its veth (docs/lab.md#veth-peer-needs-xdp), and TCP
		// through rewritten frames needs real checksums
		// (docs/lab.md#checksum-offload).
		sink.AttachIn(t, s.Switch.NS, s.DirPort)
		s.Dir.TxOff("eth0")
		s.Client.TxOff("eth0")
		for _, r := range s.Reals {
			r.NS.TxOff("eth0")
		}
	},
	Args: func(t *testing.T, s *Setup) []string {
		return []string{"--bpffs", filepath.Join(s.Lab.BPFFS(), "halo")}
	},
}

func TestXDP(t *testing.T) {
	if os.Getenv("HALO_VM") != "" {
		t.Skip("the XDP scenario runs on the host (make test); the VM runs the XDP golden tests on its kernel")
	}
	Run(t, xdpBackend, Checks{}, Options{Method: "DR", Subnet: 61})
}

var ipvsBackend = Backend{
	Name:    "ipvs",
	Methods: []string{"NAT", "DR", "TUN"},
	Table:   func(t *testing.T, s *Setup) string { out, _ := s.Dir.Exec("ipvsadm", "-Ln"); return out },
}

// ipvsChecks read the table with ipvsadm, the operator's view.
var ipvsChecks = Checks{
	Real: func(s *Setup, r *Real, state string) error {
		out, err := s.Dir.Exec("ipvsadm", "-Ln", "-t", s.VIP+":80")
		if err != nil {
			return fmt.Errorf("ipvsadm: %v: %s", err, out)
		}
		var line string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[0] == "->" && f[1] == r.IP+":80" {
				line = l
			}
		}
		switch f := strings.Fields(line); {
		case state == "absent" && line == "":
			return nil
		case state == "drained" && len(f) >= 4 && f[3] == "0":
			return nil
		case state == "up" && len(f) >= 4 && f[3] == "1":
			return nil
		}
		return fmt.Errorf("%s should be %s in the IPVS table:\n%s", r.Name, state, out)
	},
	Service: func(t *testing.T, s *Setup) {
		out := s.Dir.MustExec("ipvsadm", "-Ln", "-t", s.VIP+":80")
		want := fmt.Sprintf("TCP  %s:80 rr", s.VIP)
		if p := s.Opts.Persistence; p > 0 {
			want += fmt.Sprintf(" persistent %d", p)
		}
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" \n") {
			t.Errorf("IPVS table lacks %q:\n%s", want, out)
		}
		method := map[string]string{"NAT": "Masq", "DR": "Route", "TUN": "Tunnel"}[s.Opts.Method]
		if n := strings.Count(out, method); n != 3 {
			t.Errorf("IPVS table has %d reals in %s, want 3:\n%s", n, method, out)
		}
	},
	Stopped: func(t *testing.T, s *Setup) {
		if out, _ := s.Dir.Exec("ipvsadm", "-Ln"); strings.Contains(out, s.VIP) {
			t.Errorf("a clean stop should remove halod's service:\n%s", out)
		}
	},
}

func requireIPVS(t *testing.T) {
	t.Helper()
	b, err := ipvsdp.New(ipvsdp.Options{})
	if err != nil {
		if os.Getenv("HALO_VM") != "" {
			t.Fatalf("the test VM must have IPVS: %v", err)
		}
		t.Skipf("no IPVS in this kernel (%v); `make test-vm` runs this scenario in a Debian kernel", err)
	}
	b.Close()
}

func TestIPVS(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"NAT", Options{Method: "NAT", Subnet: 62}},
		{"DR-inhibit", Options{Method: "DR", Inhibit: true, Subnet: 63}},
		{"TUN", Options{Method: "TUN", Subnet: 64}},
		{"NAT-persistence", Options{Method: "NAT", Persistence: 50, Subnet: 65}},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireIPVS(t)
			Run(t, ipvsBackend, ipvsChecks, c.o)
		})
	}
}

// TestIPVSRestartWithoutGap: halod stopped with --keep-dataplane leaves the
// table forwarding, and the next halod adopts it while a client keeps
// connecting: not one connection fails.
func TestIPVSRestartWithoutGap(t *testing.T) {
	requireIPVS(t)
	s := Build(t, Options{Method: "NAT", Subnet: 66})
	keep := ipvsBackend
	keep.Args = func(*testing.T, *Setup) []string { return []string{"--keep-dataplane"} }
	s.StartHalod(t, keep)
	seen := map[string]bool{}
	if !until(20*time.Second, func() bool {
		if body, err := s.Get(); err == nil {
			seen[body] = true
		}
		return len(seen) == 3
	}) {
		t.Fatalf("the client reached only %v%s", seen, table(t, ipvsBackend, s))
	}
	s.StopHalod(t)
	if out := ipvsBackend.Table(t, s); strings.Count(out, "Masq") != 3 {
		t.Fatalf("--keep-dataplane should leave the service with its 3 reals:\n%s", out)
	}
	if got := s.Spread(6); got["error"] > 0 {
		t.Fatalf("with halod gone the kept table should still forward: %v", got)
	}
	// A service that is re-created starts its counters from zero; an
	// adopted one keeps counting.
	time.Sleep(2500 * time.Millisecond) // IPVS publishes counters every 2 s
	before := serviceConns(t, s)

	var mu sync.Mutex
	got := map[string]int{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 400; i++ { // bounded: at most 400 connections
			select {
			case <-stop:
				return
			default:
			}
			body, err := s.Get()
			if err != nil {
				body = "error"
			}
			mu.Lock()
			got[body]++
			mu.Unlock()
		}
	}()
	s.StartHalod(t, ipvsBackend)
	// Past the new halod's first Apply: its metrics answer and at least
	// one health-check round has run.
	up := until(20*time.Second, func() bool {
		return strings.Contains(s.metricsOrEmpty(), "halo_dataplane_packets_total")
	})
	time.Sleep(3 * time.Second)
	close(stop)
	<-done
	if !up {
		t.Errorf("the new halod's metrics never showed the data plane")
	}
	mu.Lock()
	defer mu.Unlock()
	if got["error"] > 0 || len(got) < 3 {
		t.Errorf("connections while the new halod adopted the table: %v (want no error, all 3 reals)", got)
	}
	t.Logf("connections across the restart: %v", got)
	time.Sleep(2500 * time.Millisecond)
	after := serviceConns(t, s)
	if n := got["real1"] + got["real2"] + got["real3"]; after < before+n {
		t.Errorf("IPVS counted %d connections before and %d after the restart, %d made meanwhile: the service was re-created, not adopted", before, after, n)
	}
	s.StopHalod(t)
	if out := ipvsBackend.Table(t, s); strings.Contains(out, s.VIP) {
		t.Errorf("a clean stop of the adopting halod should remove the service:\n%s", out)
	}
}

// serviceConns is the service's connection counter as ipvsadm reports it.
func serviceConns(t *testing.T, s *Setup) int {
	t.Helper()
	out := s.Dir.MustExec("ipvsadm", "-Ln", "--stats", "--exact", "-t", s.VIP+":80")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "TCP" {
			var n int
			if _, err := fmt.Sscan(f[2], &n); err == nil {
				return n
			}
		}
	}
	t.Fatalf("no service counters in:\n%s", out)
	return 0
}

// TestIPVSMissingModule: on a kernel without IPVS (this development
// machine), a keepalived.conf with a virtual server and no dataplane block
// means IPVS, as with keepalived, and halod stops at start with one error
// that names the module.
func TestIPVSMissingModule(t *testing.T) {
	if b, err := ipvsdp.New(ipvsdp.Options{}); err == nil {
		b.Close()
		t.Skip("this kernel has IPVS; the missing-module error shows only without it")
	}
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(conf, []byte(`virtual_server 192.0.2.1 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 192.0.2.2 80 {
    weight 1
  }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, Halod(t), "-f", conf, "--control", filepath.Join(t.TempDir(), "s.sock")).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("halod kept running without IPVS:\n%s", out)
	}
	if err == nil {
		t.Fatalf("halod started without IPVS:\n%s", out)
	}
	if !strings.Contains(string(out), "module ip_vs") {
		t.Errorf("halod's error does not name module ip_vs:\n%s", out)
	}
}
