// Command demo runs halo's main job on a lab built from network
// namespaces: two directors elect a VRRP master for a VIP and load-balance
// it over XDP in DR mode to two web servers, a client fetches pages, the
// master stops, the backup takes over, and the client keeps being served.
// `make demo` runs it as root. Everything it creates is removed when it
// exits, also on failure or Ctrl-C.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

// runner satisfies lab.T outside of `go test`.
type runner struct{ cleanups []func() }

func (r *runner) Helper()                           {}
func (r *runner) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }
func (r *runner) Logf(format string, args ...any)   { fmt.Printf(format+"\n", args...) }
func (r *runner) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (r *runner) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (network namespaces and XDP)")
		os.Exit(1)
	}
	r := &runner{}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; r.close(); os.Exit(130) }()
	code := 0
	func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintln(os.Stderr, "demo failed:", p)
				code = 1
			}
			fmt.Println("removing the lab")
			r.close()
		}()
		demo(r)
	}()
	os.Exit(code)
}

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
  delay_loop 2
  lb_algo wrr
  lb_kind DR
  real_server 10.210.0.21 80 {
    weight 2
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
    }
  }
  real_server 10.210.0.22 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
    }
  }
}
dataplane {
  backend xdp
  interface eth0
}
`, name, prio, vip, vip)
}

func demo(r *runner) {
	tmp, err := os.MkdirTemp("", "halo-demo-")
	if err != nil {
		panic(err)
	}
	r.Cleanup(func() { os.RemoveAll(tmp) })
	fmt.Println("building halod and haloctl")
	build := exec.Command("go", "build", "-o", tmp+"/", "./cmd/halod", "./cmd/haloctl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		panic(fmt.Sprintf("go build: %v\n%s", err, out))
	}

	l := lab.New(r)
	sw := l.Switch("sw")
	addrs := map[string]string{"client": "10.210.0.2", "dir1": "10.210.0.11", "dir2": "10.210.0.12",
		"real1": "10.210.0.21", "real2": "10.210.0.22"}
	ns := map[string]*lab.NS{}
	pass, err := sink.Load()
	if err != nil {
		panic(err)
	}
	r.Cleanup(func() { pass.Close() })
	for _, name := range []string{"client", "dir1", "dir2", "real1", "real2"} {
		n := l.NS(name)
		port := sw.Plug(n, "eth0")
		n.Addr("eth0", addrs[name]+"/24")
		n.TxOff("eth0") // TCP through XDP_TX on veth needs real checksums
		ns[name] = n
		if strings.HasPrefix(name, "dir") {
			// XDP_TX'd frames need an XDP program on the veth peer.
			sw.NS.Do(func() error {
				ifi, err := net.InterfaceByName(port)
				if err != nil {
					return err
				}
				lk, err := pass.Attach(ifi.Index)
				if err == nil {
					r.Cleanup(func() { lk.Close() })
				}
				return err
			})
		}
		fmt.Printf("  %-6s %-12s namespace %s\n", name, addrs[name], n.Name)
	}
	for _, name := range []string{"real1", "real2"} {
		n := ns[name]
		n.IP("addr", "add", vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			n.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			n.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		var lst net.Listener
		if err := n.Do(func() (err error) { lst, err = net.Listen("tcp", "0.0.0.0:80"); return err }); err != nil {
			panic(err)
		}
		r.Cleanup(func() { lst.Close() })
		who := name
		go http.Serve(lst, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { fmt.Fprintf(w, "hello from %s\n", who) }))
	}

	bpffs := l.BPFFS()
	procs := map[string]*lab.Proc{}
	for i, name := range []string{"dir1", "dir2"} {
		cf := filepath.Join(tmp, name+".conf")
		os.WriteFile(cf, []byte(conf(name, 150-50*i)), 0o600)
		procs[name] = ns[name].Start(filepath.Join(tmp, "halod"), "-f", cf, "--bpffs", filepath.Join(bpffs, name),
			"--control", filepath.Join(tmp, name+".sock"))
	}
	r.Cleanup(func() {
		for _, p := range procs {
			p.Stop()
		}
	})
	fmt.Println("halod started on dir1 (priority 150) and dir2 (priority 100); waiting for the election")
	if !wait(10*time.Second, func() bool { return hasVIP(ns["dir1"]) }) {
		panic("no master:\n" + procs["dir1"].Output())
	}
	time.Sleep(time.Second)
	status(tmp, "dir1")

	fetch(ns["client"], 12)

	fmt.Println("\nstopping halod on dir1 (SIGTERM): it sends priority 0, dir2 takes over after the skew time")
	start := time.Now()
	procs["dir1"].Signal(syscall.SIGTERM)
	if !wait(5*time.Second, func() bool { return hasVIP(ns["dir2"]) }) {
		panic("dir2 did not take over:\n" + procs["dir2"].Output())
	}
	fmt.Printf("VIP on dir2 after %v\n", time.Since(start).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	fetch(ns["client"], 6)
	status(tmp, "dir2")
	fmt.Println("\ndemo OK")
}

func wait(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func hasVIP(n *lab.NS) bool {
	out, _ := exec.Command("ip", "-n", n.Name, "-o", "addr", "show", "dev", "eth0").Output()
	return strings.Contains(string(out), " "+vip+"/")
}

func status(tmp, dir string) {
	out, _ := exec.Command(filepath.Join(tmp, "haloctl"), "--control", filepath.Join(tmp, dir+".sock"), "status").CombinedOutput()
	fmt.Printf("\nhaloctl status on %s:\n%s", dir, out)
}

func fetch(client *lab.NS, n int) {
	fmt.Printf("\nclient: %d new connections to http://%s/ (weights 2:1)\n", n, vip)
	count := map[string]int{}
	for i := 0; i < n; i++ {
		body, err := client.HTTPGet(vip+":80", "/", 3*time.Second)
		if err != nil {
			panic(fmt.Sprintf("request %d: %v", i, err))
		}
		count[body]++
	}
	for k, v := range count {
		fmt.Printf("  %-18s %d\n", k, v)
	}
}
