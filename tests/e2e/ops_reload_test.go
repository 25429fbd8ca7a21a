package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// opsConf is a director config: VRRP instances by name (each with its own
// VRID and VIP) and virtual servers as given.
func opsConf(prio int, instances []string, vss string) string {
	var b strings.Builder
	b.WriteString("global_defs {\n  vrrp_garp_master_delay 1\n}\n")
	for _, name := range instances {
		n := int(name[len(name)-1] - '0')
		fmt.Fprintf(&b, `vrrp_instance %s {
  state BACKUP
  interface eth0
  virtual_router_id %d
  priority %d
  advert_int 1
  virtual_ipaddress {
    10.142.0.%d/24
  }
}
`, name, 50+n, prio, 99+n)
	}
	b.WriteString(vss)
	return b.String()
}

func opsVS(vip string, reals ...[2]int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual_server %s 80 {\n  delay_loop 1\n  lb_kind DR\n  protocol TCP\n", vip)
	for _, r := range reals {
		fmt.Fprintf(&b, "  real_server 10.142.0.%d 80 {\n    weight %d\n    TCP_CHECK {\n      connect_timeout 1\n      retry 0\n    }\n  }\n", r[0], r[1])
	}
	b.WriteString("}\n")
	return b.String()
}

// addrMonitor records `ip monitor address` in a namespace.
type addrMonitor struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	buf strings.Builder
}

func monitorAddrs(t *testing.T, ns *lab.NS) *addrMonitor {
	t.Helper()
	m := &addrMonitor{cmd: exec.Command("ip", "-n", ns.Name, "monitor", "address")}
	pr, pw := io.Pipe()
	m.cmd.Stdout = pw
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := pr.Read(b)
			m.mu.Lock()
			m.buf.Write(b[:n])
			m.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait(); pw.Close() })
	time.Sleep(100 * time.Millisecond) // subscribed before anything happens
	return m
}

func (m *addrMonitor) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.String()
}

// scrapeNS fetches /metrics from 127.0.0.1:9650 inside ns.
func scrapeNS(t *testing.T, ns *lab.NS) string {
	t.Helper()
	var body string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9650", 2*time.Second)
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
		t.Fatalf("scrape: %v", err)
	}
	return body
}

// A reload with a VRRP pair running: a weight changes, a virtual server
// and a VRRP instance are added, one instance is removed. The unchanged
// instance makes no transition and loses no VIP (netlink says so); the
// removed one releases its VIP, the new one takes its own; a real that
// was down stays down; a broken config changes nothing and haloctl
// reload exits 1 with the diagnostics.
func TestOpsReloadWithVRRPPair(t *testing.T) {
	v := newVRRPLab(t, 142)
	var reals []*webReal
	for i, ip := range []string{"10.142.0.11", "10.142.0.12"} {
		ns := v.l.NS(fmt.Sprintf("r%d", i+1))
		v.sw.Plug(ns, "eth0")
		ns.Addr("eth0", ip+"/24")
		w := &webReal{ns: ns, addr: ip + ":80"}
		w.Start(t)
		t.Cleanup(w.Stop)
		reals = append(reals, w)
	}
	vs1 := opsVS("10.142.0.200", [2]int{11, 1}, [2]int{12, 1})
	conf1 := writeFile(t, "n1.conf", opsConf(150, []string{"VI_1", "VI_2"}, vs1))
	conf2 := writeFile(t, "n2.conf", opsConf(100, []string{"VI_1", "VI_2"}, vs1))
	sock1, sock2 := filepath.Join(t.TempDir(), "n1.sock"), filepath.Join(t.TempDir(), "n2.sock")
	p1 := startHalod(t, v.n1, conf1, "--control", sock1, "--metrics-addr", "127.0.0.1:9650")
	startHalod(t, v.n2, conf2, "--control", sock2, "--metrics-addr", "127.0.0.1:9650")

	state := func(sock, name string) (string, int) {
		st := haloctlStatus(t, sock)
		if st == nil {
			return "", -1
		}
		for _, in := range st.VRRP {
			if in.Name == name {
				return in.State, in.Transitions
			}
		}
		return "absent", -1
	}
	if waitFor(12*time.Second, func() bool {
		s1, _ := state(sock1, "VI_1")
		s2, _ := state(sock1, "VI_2")
		b1, _ := state(sock2, "VI_1")
		return s1 == "MASTER" && s2 == "MASTER" && b1 == "BACKUP" && hasAddr(v.n1, "10.142.0.100") && hasAddr(v.n1, "10.142.0.101")
	}) < 0 {
		t.Fatalf("n1 not master of both: %+v", haloctlStatus(t, sock1))
	}
	// keepalived's wording in the log, next to the structured fields.
	if out := p1.Output(); !strings.Contains(out, "(VI_1) Entering MASTER STATE") || !strings.Contains(out, "instance=VI_1 state=MASTER") {
		t.Errorf("no keepalived-style transition line in the log:\n%s", out)
	}
	reals[1].Stop()
	if waitFor(6*time.Second, func() bool { up, found, _ := realUp(haloctlStatus(t, sock1), "10.142.0.12"); return found && !up }) < 0 {
		t.Fatalf("real 2 not down: %+v", haloctlStatus(t, sock1))
	}
	_, trans1 := state(sock1, "VI_1")
	_, trans2 := state(sock2, "VI_1")
	metricsBefore := metricValue(scrapeNS(t, v.n1), `halo_vrrp_transitions_total{instance="VI_1"}`)
	mon1, mon2 := monitorAddrs(t, v.n1), monitorAddrs(t, v.n2)

	// The reload: VI_2 out, VI_3 in, real 1's weight 1 → 3, a second
	// virtual server. Backup first, as an operator would roll it out.
	vsNew := opsVS("10.142.0.200", [2]int{11, 3}, [2]int{12, 1}) + opsVS("10.142.0.201", [2]int{11, 1})
	os.WriteFile(conf2, []byte(opsConf(100, []string{"VI_1", "VI_3"}, vsNew)), 0o600)
	os.WriteFile(conf1, []byte(opsConf(150, []string{"VI_1", "VI_3"}, vsNew)), 0o600)
	for _, sock := range []string{sock2, sock1} {
		if out, err := haloctl(t, sock, "reload"); err != nil {
			t.Fatalf("haloctl reload: %v\n%s", err, out)
		}
	}
	st := haloctlStatus(t, sock1)
	if up, found, _ := realUp(st, "10.142.0.12"); !found || up {
		t.Fatalf("real 2 right after the reload: found %v up %v (a down real must stay down)", found, up)
	}
	if len(st.VirtualServers) != 2 || st.VirtualServers[0].Reals[0].Weight != 3 {
		t.Fatalf("virtual servers after reload: %+v", st.VirtualServers)
	}
	if waitFor(10*time.Second, func() bool {
		s3, _ := state(sock1, "VI_3")
		return s3 == "MASTER" && hasAddr(v.n1, "10.142.0.102") && !hasAddr(v.n1, "10.142.0.101")
	}) < 0 {
		t.Fatalf("VI_3 not master or VI_2's VIP still there: %+v\n%s", haloctlStatus(t, sock1), p1.Output())
	}
	if s, _ := state(sock1, "VI_2"); s != "absent" {
		t.Fatalf("removed VI_2 still reported: %s", s)
	}
	time.Sleep(1500 * time.Millisecond) // a full advert interval more for anything to go wrong
	s1, tr1 := state(sock1, "VI_1")
	s2, tr2 := state(sock2, "VI_1")
	if s1 != "MASTER" || s2 != "BACKUP" || tr1 != trans1 || tr2 != trans2 {
		t.Fatalf("VI_1 after reload: n1 %s (%d transitions, had %d), n2 %s (%d, had %d)", s1, tr1, trans1, s2, tr2, trans2)
	}
	if got := metricValue(scrapeNS(t, v.n1), `halo_vrrp_transitions_total{instance="VI_1"}`); got != metricsBefore {
		t.Fatalf("halo_vrrp_transitions_total{VI_1} %v, was %v", got, metricsBefore)
	}
	for _, m := range []*addrMonitor{mon1, mon2} {
		for _, l := range strings.Split(m.String(), "\n") {
			if strings.HasPrefix(l, "Deleted") && strings.Contains(l, "10.142.0.100/") {
				t.Fatalf("VI_1's VIP was removed during the reload: %s\nmonitor:\n%s", l, m.String())
			}
		}
	}
	if !strings.Contains(mon1.String(), "Deleted") || !strings.Contains(mon1.String(), "10.142.0.101") {
		t.Errorf("netlink saw no removal of VI_2's VIP on n1:\n%s", mon1.String())
	}
	if up, _, _ := realUp(haloctlStatus(t, sock1), "10.142.0.12"); up {
		t.Fatal("real 2 came back up after the reload")
	}

	// A broken config changes nothing.
	os.WriteFile(conf1, []byte(opsConf(150, []string{"VI_1"}, vsNew)+"virtual_server 10.142.0.999 80 {\n}\n"), 0o600)
	out, err := haloctl(t, sock1, "reload")
	if err == nil || !strings.Contains(out, "n1.conf:") || !strings.Contains(out, "refused") {
		t.Fatalf("broken reload: err %v\n%s", err, out)
	}
	if s3, _ := state(sock1, "VI_3"); s3 != "MASTER" || !hasAddr(v.n1, "10.142.0.102") {
		t.Fatalf("a refused reload changed VRRP: VI_3 %s", s3)
	}
	m := scrapeNS(t, v.n1)
	if metricValue(m, "halo_config_last_reload_successful") != 0 || metricValue(m, `halo_config_reloads_total{result="failure"}`) != 1 ||
		metricValue(m, `halo_config_reloads_total{result="success"}`) != 1 {
		t.Fatalf("reload metrics after a refused reload:\n%s", grepLines(m, "halo_config_"))
	}
	if st := haloctlStatus(t, sock1); len(st.VirtualServers) != 2 || st.Config.LastReloadSuccessful {
		t.Fatalf("status after a refused reload: %+v", st.Config)
	}
}
