package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
