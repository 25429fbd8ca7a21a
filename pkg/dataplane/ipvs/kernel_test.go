package ipvs

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// These tests drive the backend against the kernel's IPVS, each in a
// namespace of its own (IPVS tables are per network namespace). This
// host's kernel has no IPVS, so they skip here; `make test-vm` runs them in
// a Debian kernel under qemu (docs/ipvs.md#vm-harness).

// counting wraps the real client and counts the writes, to prove that an
// Apply of an unchanged set, or an adoption, writes nothing.
type counting struct {
	ipvs.Client
	writes []string
}

func (c *counting) CreateService(s ipvs.Service) error {
	c.writes = append(c.writes, "create-service "+identOfKernel(s).String())
	return c.Client.CreateService(s)
}
func (c *counting) UpdateService(s ipvs.Service) error {
	c.writes = append(c.writes, "update-service "+identOfKernel(s).String())
	return c.Client.UpdateService(s)
}
func (c *counting) RemoveService(s ipvs.Service) error {
	c.writes = append(c.writes, "remove-service "+identOfKernel(s).String())
	return c.Client.RemoveService(s)
}
func (c *counting) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	c.writes = append(c.writes, fmt.Sprintf("create-dest %s %s", identOfKernel(s), d.Address))
	return c.Client.CreateDestination(s, d)
}
func (c *counting) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	c.writes = append(c.writes, fmt.Sprintf("update-dest %s %s", identOfKernel(s), d.Address))
	return c.Client.UpdateDestination(s, d)
}
func (c *counting) RemoveDestination(s ipvs.Service, d ipvs.Destination) error {
	c.writes = append(c.writes, fmt.Sprintf("remove-dest %s %s", identOfKernel(s), d.Address))
	return c.Client.RemoveDestination(s, d)
}
func (c *counting) Close() error { closeClient(c.Client); return nil }

// kernelNS returns a fresh namespace and a client of its IPVS, or skips.
func kernelNS(t *testing.T) (*lab.Lab, *lab.NS, func() *counting) {
	t.Helper()
	lab.RequireRoot(t)
	probe, err := New(Options{})
	if err != nil {
		if os.Getenv("HALO_VM") != "" {
			t.Fatalf("the test VM must have IPVS: %v", err)
		}
		t.Skipf("no IPVS in this kernel (%v); `make test-vm` runs this test in a Debian kernel", err)
	}
	probe.Close()
	l := lab.New(t)
	ns := l.NS("dir")
	open := func() *counting {
		t.Helper()
		var c ipvs.Client
		// The netlink socket belongs to the namespace it was opened in.
		if err := ns.Do(func() (err error) { c, err = ipvs.New(); return err }); err != nil {
			t.Fatal(err)
		}
		return &counting{Client: c}
	}
	return l, ns, open
}

// ipvsadm shows the namespace's table as an operator would see it.
func ipvsadm(t *testing.T, ns *lab.NS) string {
	t.Helper()
	return ns.MustExec("ipvsadm", "-Ln")
}

func TestKernelInstallsEveryKind(t *testing.T) {
	_, ns, open := kernelNS(t)
	c := open()
	b := NewWithClient(c, Options{})
	defer b.Close()
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	have, err := b.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := dataplane.Canonical(sample()); !reflect.DeepEqual(have, want) {
		t.Errorf("kernel read-back differs:\n got %+v\nwant %+v", have, want)
	}
	// The kernel's read-back in normal form, independent of what Services
	// maps back to the control plane's spelling.
	kern, err := b.kernelServices()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := plan(sample())
	for _, p := range want {
		s, ok := kern[p.id]
		if !ok {
			t.Errorf("%s not in the kernel", p.id)
			continue
		}
		ds, _ := b.destinations(s.Service)
		if got := fromKernel(p.orig.Key, s.Service, plain(ds)); !reflect.DeepEqual(got, p.norm) {
			t.Errorf("%s:\n kernel %+v\n   want %+v", p.id, got, p.norm)
		}
	}
	out := ipvsadm(t, ns)
	t.Logf("ipvsadm -Ln:\n%s", out)
	for _, line := range []string{
		"TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0",
		"-> 10.0.1.11:8080               Masq    2",
		"-> 10.0.1.12:443                Route   0",
		"FWM  7 rr persistent 60",
		"-> 10.0.2.12:80                 Tunnel  1",
		"UDP  [fd00::100]:53 lc persistent 30 mask 64 ops",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("ipvsadm -Ln lacks %q", line)
		}
	}
	c.writes = nil
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if len(c.writes) != 0 {
		t.Errorf("applying the same set again wrote %q", c.writes)
	}
}

func TestKernelEverySchedulerAndFlag(t *testing.T) {
	_, _, open := kernelNS(t)
	b := NewWithClient(open(), Options{})
	defer b.Close()
	for _, sched := range Schedulers {
		flags := map[string][]string{"sh": {"sh-fallback", "sh-port"}, "mh": {"mh-fallback", "mh-port"}}[sched]
		s := dataplane.Service{Key: dataplane.ServiceKey{Addr: ap("10.9.0.1"), Port: 80, Proto: dataplane.TCP},
			Scheduler: sched, SchedFlags: flags, Method: dataplane.DR,
			Reals: []dataplane.Real{{Addr: ap("10.9.1.1"), Weight: 1}, {Addr: ap("10.9.1.2"), Weight: 2}}}
		err := b.Apply(ctx, []dataplane.Service{s})
		if err != nil && sched == "twos" {
			t.Logf("twos is not in this kernel (Linux 6.2 added it): %v", err)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", sched, err)
			continue
		}
		have, _ := b.Services(ctx)
		if len(have) != 1 || have[0].Scheduler != sched || !slices.Equal(have[0].SchedFlags, flags) {
			t.Errorf("%s: kernel has %+v", sched, have)
		}
	}
}

func TestKernelRestartAdoptsAndStopRemovesOnlyOwn(t *testing.T) {
	_, ns, open := kernelNS(t)
	ns.MustExec("ipvsadm", "-A", "-t", "192.0.2.9:25", "-s", "rr")
	ns.MustExec("ipvsadm", "-a", "-t", "192.0.2.9:25", "-r", "192.0.2.10:25", "-g")
	old := NewWithClient(open(), Options{KeepOnClose: true})
	if err := old.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if out := ipvsadm(t, ns); strings.Count(out, "\nTCP")+strings.Count(out, "\nUDP")+strings.Count(out, "\nFWM") != 6 {
		t.Fatalf("keep-dataplane should leave 5 services plus the foreign one:\n%s", out)
	}
	c := open()
	b := NewWithClient(c, Options{})
	if err := b.Apply(ctx, sample()); err != nil {
		t.Fatal(err)
	}
	if len(c.writes) != 0 {
		t.Errorf("adoption after a restart wrote %q; it must not touch a matching table", c.writes)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	out := ipvsadm(t, ns)
	if !strings.Contains(out, "TCP  192.0.2.9:25 rr") || !strings.Contains(out, "-> 192.0.2.10:25") ||
		strings.Contains(out, "10.0.0.100") || strings.Contains(out, "FWM") || strings.Contains(out, "fd00::100") {
		t.Errorf("after a clean stop the table should hold only the foreign service:\n%s", out)
	}
}

// TestKernelNATTrafficAndStats sends HTTP through a NAT service, over
// IPv4 and IPv6, and reads the counters back through the contract.
func TestKernelNATTrafficAndStats(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { natTraffic(t, "10.77.%d.%d", "/24", "/32") })
	t.Run("IPv6", func(t *testing.T) { natTraffic(t, "fd77:%d::%d", "/64", "/128") })
}

func natTraffic(t *testing.T, pattern, plen, host string) {
	l, dir, open := kernelNS(t)
	addr := func(subnet, h int) string { return fmt.Sprintf(pattern, subnet, h) }
	cl := l.NS("cl")
	l.Veth(dir, "c0", cl, "eth0")
	dir.Addr("c0", addr(0, 1)+plen)
	cl.Addr("eth0", addr(0, 2)+plen)
	cl.Route("default", addr(0, 1))
	dir.Sysctl("net.ipv4.ip_forward", "1")
	dir.Sysctl("net.ipv6.conf.all.forwarding", "1")
	var reals []dataplane.Real
	for i := 1; i <= 2; i++ {
		r := l.NS(fmt.Sprintf("r%d", i))
		l.Veth(dir, fmt.Sprintf("r%d", i), r, "eth0")
		dir.Addr(fmt.Sprintf("r%d", i), addr(i, 1)+plen)
		ip := addr(i, 2)
		r.Addr("eth0", ip+plen)
		r.Route("default", addr(i, 1))
		name := fmt.Sprintf("real%d", i)
		var ln net.Listener
		if err := r.Do(func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, name) }))
		reals = append(reals, dataplane.Real{Addr: ap(ip), Port: 8080, Weight: 1})
	}
	vip := addr(0, 100)
	dir.Addr("c0", vip+host)
	svc := dataplane.Service{Key: dataplane.ServiceKey{Addr: ap(vip), Port: 80, Proto: dataplane.TCP},
		Scheduler: "rr", Method: dataplane.NAT, Reals: reals}
	b := NewWithClient(open(), Options{})
	defer b.Close()
	if err := b.Apply(ctx, []dataplane.Service{svc}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for i := 0; i < 6; i++ {
		body, err := cl.HTTPGet(net.JoinHostPort(vip, "80"), "/", 3*time.Second)
		if err != nil {
			t.Fatalf("GET %d through the VIP: %v\n%s", i, err, ipvsadm(t, dir))
		}
		got[body]++
	}
	if got["real1"] != 3 || got["real2"] != 3 {
		t.Errorf("rr over two reals answered %v, want 3 each", got)
	}
	// The kernel folds its per-CPU counters into what it reports every
	// two seconds (its rate estimator), so the totals show up late.
	var s dataplane.ServiceStats
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := b.Stats(ctx)
		if err != nil || len(st) != 1 {
			t.Fatalf("Stats %+v %v", st, err)
		}
		s = st[0]
		if s.Stats.Conns >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if s.Key != svc.Key || s.Stats.Conns != 6 || s.Stats.Packets < 6*4 || s.Stats.PacketsOut < 6*3 || s.Stats.Bytes == 0 {
		t.Errorf("service counters %+v", s.Stats)
	}
	for _, r := range reals {
		rs, ok := s.Reals[r.Key()]
		if !ok || rs.Conns != 3 || rs.ActiveConns+rs.InactiveConns == 0 {
			t.Errorf("real %s counters %+v (present %v)", r.Key(), rs, ok)
		}
	}
	t.Logf("stats: %+v", s)
}
