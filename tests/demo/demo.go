package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

const vip = "10.210.0.100"

func conf(name string, prio int) string {
	return fmt.Sprintf(`global_defs {
  router_id %s
  vrrp_garp_master_delay 1
}
vrrp_instance VI_WEB {
  state BACKUP
  interface eth0
  virtual_router_id 60
  priority %d
  advert_int 1
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo wrr
  lb_kind DR
  protocol TCP
  real_server 10.210.0.21 80 {
    weight 2
    HTTP_GET {
      url {
        path /
      }
      connect_timeout 1
      retry 1
      delay_before_retry 1
    }
  }
  real_server 10.210.0.22 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
      retry 1
      delay_before_retry 1
    }
  }
}
dataplane {
  backend xdp
  interface eth0
}
`, name, prio, vip, vip)
}

// result is what the demo measured.
type result struct {
	RealDown time.Duration // real2 stopped → status shows it down
	VIPMoved time.Duration // dir1 crashed → VIP on dir2
	Stall    time.Duration // longest pause of the running download
}

type demoLab struct {
	t     lab.T
	tmp   string
	ns    map[string]*lab.NS
	webs  map[string]*web
	procs map[string]*lab.Proc
}

func run(t lab.T) result {
	t.Helper()
	tmp, err := os.MkdirTemp("", "halo-demo-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	t.Logf("building halod and haloctl")
	if _, err := testkit.Build(tmp, "./cmd/halod", "./cmd/haloctl"); err != nil {
		t.Fatalf("%v", err)
	}
	d := &demoLab{t: t, tmp: tmp, ns: map[string]*lab.NS{}, webs: map[string]*web{}, procs: map[string]*lab.Proc{}}
	d.build()
	var res result

	t.Logf("halod started on dir1 (priority 150) and dir2 (priority 100); waiting for the election")
	if testkit.WaitFor(10*time.Second, func() bool { return d.ns["dir1"].HasAddr(vip) }) < 0 {
		t.Fatalf("no master:\n%s", d.procs["dir1"].Output())
	}
	d.waitReal("dir1", "10.210.0.22", true, 10*time.Second)
	d.waitReal("dir1", "10.210.0.21", true, 10*time.Second)
	d.status("dir1")
	if got := d.fetch(12); got["real1"] == 0 || got["real2"] == 0 {
		t.Fatalf("both reals should serve: %v", got)
	}

	t.Logf("\nreal2's web server stops (its port closes)")
	start := time.Now()
	d.webs["real2"].stop()
	d.waitReal("dir1", "10.210.0.22", false, 10*time.Second)
	res.RealDown = time.Since(start).Round(time.Millisecond)
	t.Logf("halod marked real2 down after %v", res.RealDown)
	d.status("dir1")
	if got := d.fetch(9); got["real2"] != 0 || got["real1"] != 9 {
		t.Fatalf("traffic must avoid the failed real: %v", got)
	}
	t.Logf("\nreal2 starts again")
	d.webs["real2"].start()
	d.waitReal("dir1", "10.210.0.22", true, 10*time.Second)
	if got := d.fetch(12); got["real2"] == 0 {
		t.Fatalf("real2 is back but gets no traffic: %v", got)
	}

	t.Logf("\nclient starts a %d MiB download (about %v); dir1 crashes in its middle:",
		bigChunk*bigChunks>>20, time.Duration(bigChunks)*bigPace)
	t.Logf("halod on dir1 gets SIGKILL and dir1's link goes down, as a machine that dies")
	dl := startDownload(d.ns["client"], vip+":80", 60*time.Second)
	<-dl.started
	time.Sleep(time.Second)
	start = time.Now()
	if err := d.procs["dir1"].Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL halod on dir1: %v", err)
	}
	d.ns["dir1"].IP("link", "set", "eth0", "down")
	if testkit.WaitFor(10*time.Second, func() bool { return d.ns["dir2"].HasAddr(vip) }) < 0 {
		t.Fatalf("dir2 did not take over:\n%s", d.procs["dir2"].Output())
	}
	res.VIPMoved = time.Since(start).Round(time.Millisecond)
	t.Logf("VIP on dir2 after %v", res.VIPMoved)
	select {
	case <-dl.done:
	case <-time.After(70 * time.Second):
		t.Fatalf("download did not finish")
	}
	if dl.err != nil {
		t.Fatalf("download through the failover: %v (after %d bytes)", dl.err, dl.bytes)
	}
	res.Stall = dl.stall.Round(time.Millisecond)
	t.Logf("download complete: %d bytes, every byte checked; longest pause %v", dl.bytes, res.Stall)
	d.fetch(6)
	d.status("dir2")
	return res
}

// build makes the lab: a switch, a client, two directors, two reals.
func (d *demoLab) build() {
	t := d.t
	l := lab.New(t)
	sw := l.Switch("sw")
	addrs := map[string]string{"client": "10.210.0.2", "dir1": "10.210.0.11", "dir2": "10.210.0.12",
		"real1": "10.210.0.21", "real2": "10.210.0.22"}
	for _, name := range []string{"client", "dir1", "dir2", "real1", "real2"} {
		n := l.NS(name)
		port := sw.Plug(n, "eth0")
		n.Addr("eth0", addrs[name]+"/24")
		n.TxOff("eth0") // TCP through XDP_TX on veth needs real checksums
		d.ns[name] = n
		if strings.HasPrefix(name, "dir") {
			sink.AttachIn(t, sw.NS, port) // XDP_TX'd frames need XDP on the veth peer
		}
		t.Logf("  %-6s %-12s namespace %s", name, addrs[name], n.Name)
	}
	for _, name := range []string{"real1", "real2"} {
		n := d.ns[name]
		n.IP("addr", "add", vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			n.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			n.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		w := &web{t: t, ns: n, name: name}
		w.start()
		t.Cleanup(w.stop)
		d.webs[name] = w
	}
	bpffs := l.BPFFS()
	for i, name := range []string{"dir1", "dir2"} {
		cf := filepath.Join(d.tmp, name+".conf")
		if err := os.WriteFile(cf, []byte(conf(name, 150-50*i)), 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		d.procs[name] = d.ns[name].Start(filepath.Join(d.tmp, "halod"), "-f", cf, "--bpffs", filepath.Join(bpffs, name),
			"--control", filepath.Join(d.tmp, name+".sock"))
	}
	t.Cleanup(func() {
		for _, p := range d.procs {
			p.Stop()
		}
	})
}

func (d *demoLab) haloctl(dir string, args ...string) ([]byte, error) {
	args = append([]string{"--control", filepath.Join(d.tmp, dir+".sock")}, args...)
	return exec.Command(filepath.Join(d.tmp, "haloctl"), args...).CombinedOutput()
}

func (d *demoLab) status(dir string) {
	out, _ := d.haloctl(dir, "status")
	d.t.Logf("\nhaloctl status on %s:\n%s", dir, out)
}

// realUp reads the real's state from `haloctl status --json`: found is
// false while halod does not answer or does not list it.
func (d *demoLab) realUp(dir, addr string) (up, found bool) {
	out, err := d.haloctl(dir, "status", "--json")
	if err != nil {
		return false, false
	}
	var st struct {
		VirtualServers []struct {
			Reals []struct {
				Address string `json:"address"`
				Up      bool   `json:"up"`
			} `json:"reals"`
		} `json:"virtual_servers"`
	}
	if json.Unmarshal(out, &st) != nil {
		return false, false
	}
	for _, vs := range st.VirtualServers {
		for _, r := range vs.Reals {
			if r.Address == addr {
				return r.Up, true
			}
		}
	}
	return false, false
}

func (d *demoLab) waitReal(dir, addr string, up bool, within time.Duration) {
	d.t.Helper()
	if testkit.WaitFor(within, func() bool { u, ok := d.realUp(dir, addr); return ok && u == up }) < 0 {
		out, _ := d.haloctl(dir, "status")
		d.t.Fatalf("real %s not up=%v on %s within %v:\n%s", addr, up, dir, within, out)
	}
}

// fetch makes n new connections to the VIP and counts which real answered.
func (d *demoLab) fetch(n int) map[string]int {
	d.t.Helper()
	d.t.Logf("\nclient: %d new connections to http://%s/ (weights 2:1)", n, vip)
	count := map[string]int{}
	for i := 0; i < n; i++ {
		body, err := d.ns["client"].HTTPGet(vip+":80", "/", 3*time.Second)
		if err != nil {
			d.t.Fatalf("request %d: %v", i, err)
		}
		count[strings.TrimPrefix(body, "hello from ")]++
	}
	for k, v := range count {
		d.t.Logf("  %-8s %d", k, v)
	}
	return count
}
