package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// drLab: a client, a director running halod with the XDP data plane in DR
// mode, and three real servers holding the VIP on lo (arp_ignore=1,
// arp_announce=2), all on one bridge.
type drLab struct {
	l       *lab.Lab
	sw      *lab.Switch
	dir, cl *lab.NS
	reals   []*drReal
	vip     string
	conf    string
	bpffs   string
	sock    string
}

type drReal struct {
	ns   *lab.NS
	name string
	mu   sync.Mutex
	l    net.Listener
}

// serve answers /healthz, / with the real's name, and /stream?n=BYTES with
// n bytes paced over a few seconds.
func (r *drReal) start(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ns.Do(func() (err error) { r.l, err = net.Listen("tcp", "0.0.0.0:80"); return err }); err != nil {
		t.Fatal(err)
	}
	name := r.name
	go http.Serve(r.l, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/stream":
			n, _ := strconv.Atoi(req.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			chunk := make([]byte, 32<<10)
			for sent := 0; sent < n; sent += len(chunk) {
				if n-sent < len(chunk) {
					chunk = chunk[:n-sent]
				}
				if _, err := w.Write(chunk); err != nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		default:
			fmt.Fprintf(w, "%s\n", name)
		}
	}))
}

func (r *drReal) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.l != nil {
		r.l.Close()
		r.l = nil
	}
}

func newDRLab(t *testing.T, subnet int, mode string) *drLab {
	lab.RequireRoot(t)
	l := lab.New(t)
	d := &drLab{l: l, sw: l.Switch("sw"), vip: fmt.Sprintf("10.%d.0.100", subnet)}
	d.dir, d.cl = l.NS("dir"), l.NS("cl")
	plug := func(n *lab.NS, ip string) {
		port := d.sw.Plug(n, "eth0")
		if n == d.dir {
			// Frames the director bounces with XDP_TX are dropped unless the
			// peer of its veth runs XDP (docs/lab.md#veth-peer-needs-xdp): a pass program on
			// the bridge port. (GRO on the port also works, but its batching
			// delays every frame.)
			attachPass(t, d.sw.NS, port)
		}
		n.Addr("eth0", ip+"/24")
		// TCP through XDP-rewritten frames needs real checksums
		// (docs/lab.md#checksum-offload).
		n.TxOff("eth0")
	}
	plug(d.dir, fmt.Sprintf("10.%d.0.1", subnet))
	plug(d.cl, fmt.Sprintf("10.%d.0.2", subnet))
	weights := []int{2, 1, 1}
	var rsConf strings.Builder
	for i := 0; i < 3; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		ip := fmt.Sprintf("10.%d.0.%d", subnet, 11+i)
		plug(ns, ip)
		ns.IP("addr", "add", d.vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			ns.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			ns.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		r := &drReal{ns: ns, name: fmt.Sprintf("real%d", i+1)}
		r.start(t)
		t.Cleanup(r.stop)
		d.reals = append(d.reals, r)
		fmt.Fprintf(&rsConf, `  real_server %s 80 {
    weight %d
    inhibit_on_failure
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 0
    }
  }
`, ip, weights[i])
	}
	d.conf = writeFile(t, "dir.conf", fmt.Sprintf(`
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 80
  priority 255
  virtual_ipaddress {
    %s/24
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo wrr
  lb_kind DR
  protocol TCP
%s}
dataplane {
  backend xdp
  interface eth0
  xdp_mode %s
}
`, d.vip, d.vip, rsConf.String(), mode))
	d.bpffs = filepath.Join(l.BPFFS(), "halo")
	d.sock = filepath.Join(t.TempDir(), "halod.sock")
	return d
}

func (d *drLab) startHalod(t *testing.T) *lab.Proc {
	return startHalod(t, d.dir, d.conf, "--dataplane", "xdp", "--bpffs", d.bpffs, "--control", d.sock,
		"--metrics-addr", "127.0.0.1:9650")
}

// scrape fetches halod's /metrics from inside the director's namespace.
func (d *drLab) scrape(t *testing.T) string {
	t.Helper()
	var body string
	err := d.dir.Do(func() error {
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

// get opens a TCP connection from the client namespace to the VIP and
// returns the real's name from "GET /".
func (d *drLab) get(t *testing.T) (string, error) {
	return d.cl.HTTPGet(d.vip+":80", "/", 3*time.Second)
}

func (d *drLab) waitReady(t *testing.T) {
	t.Helper()
	if waitFor(15*time.Second, func() bool {
		st := haloctlStatus(t, d.sock)
		if st == nil || len(st.VirtualServers) == 0 {
			return false
		}
		for _, r := range st.VirtualServers[0].Reals {
			if !r.Up {
				return false
			}
		}
		_, err := d.get(t)
		return err == nil
	}) < 0 {
		t.Fatalf("the VIP never served: %+v", haloctlStatus(t, d.sock))
	}
}

// Many real TCP connections through XDP DR complete and spread by weight; a
// real whose checker fails gets no new connections while a connection
// already open to it finishes.
func TestXDPDirectRouting(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
			subnet := 88
			if mode == "generic" {
				subnet = 89
			}
			start := time.Now()
			d := newDRLab(t, subnet, mode)
			halod := d.startHalod(t)
			d.waitReady(t)
			t.Logf("lab ready after %v", time.Since(start))

			// wrr hashes the 5-tuple into the weighted table: shares are
			// binomial over random source ports; 800 connections keep the
			// ±0.05 band beyond 2.8 sigma.
			const conns = 800
			n := map[string]int{}
			for i := 0; i < conns; i++ {
				name, err := d.get(t)
				if err != nil {
					t.Fatalf("connection %d: %v\n%s", i, err, halod.Output())
				}
				n[name]++
			}
			t.Logf("%d connections: %v (%v)", conns, n, time.Since(start))
			// Weights 2:1:1 → 50% / 25% / 25%.
			for name, want := range map[string]float64{"real1": 0.5, "real2": 0.25, "real3": 0.25} {
				got := float64(n[name]) / conns
				if got < want-0.05 || got > want+0.05 {
					t.Errorf("%s got %.2f of connections, want %.2f", name, got, want)
				}
			}
			// The XDP counters reach Prometheus.
			m := d.scrape(t)
			var pkts float64
			for _, line := range strings.Split(m, "\n") {
				if strings.HasPrefix(line, "halo_dataplane_packets_total{") {
					fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &pkts)
				}
			}
			if pkts < conns*3 || !strings.Contains(m, `halo_vrrp_state{instance="VI_1",state="MASTER"} 1`) ||
				!strings.Contains(m, "halo_real_server_up{") {
				t.Fatalf("metrics: %v packets counted for %d connections\n%s", pkts, conns, m)
			}
			if mode == "generic" {
				return
			}

			// Hold a keep-alive connection open to real2.
			var held net.Conn
			var heldReal string
			for i := 0; i < 50 && heldReal != "real2"; i++ {
				if held != nil {
					held.Close()
				}
				d.cl.Do(func() (err error) { held, err = net.DialTimeout("tcp", d.vip+":80", 2*time.Second); return err })
				heldReal = request(t, held)
			}
			if heldReal != "real2" {
				t.Fatal("could not open a connection to real2")
			}
			defer held.Close()
			// real2's listener goes away: its checker fails, inhibit_on_failure
			// drains it (weight 0): it leaves the table; the open connection
			// lives on in the server and in the XDP flow table. (A real
			// removed from the configuration instead gets no packet more:
			// TestConnectionTableKeepsFlows in pkg/dataplane/xdp.)
			d.reals[1].stop()
			if waitFor(6*time.Second, func() bool {
				st := haloctlStatus(t, d.sock)
				return st != nil && !st.VirtualServers[0].Reals[1].Up
			}) < 0 {
				t.Fatalf("real2 not marked down: %+v", haloctlStatus(t, d.sock))
			}
			time.Sleep(200 * time.Millisecond)
			for i := 0; i < 60; i++ {
				name, err := d.get(t)
				if err != nil {
					t.Fatalf("connection after real2 left: %v", err)
				}
				if name == "real2" {
					t.Fatal("a new connection went to the failed real")
				}
			}
			if got := request(t, held); got != "real2" {
				t.Fatalf("the open connection to real2 did not finish there: %q", got)
			}
		})
	}
}

// request sends one keep-alive request on c and returns the body.
func request(t *testing.T, c net.Conn) string {
	t.Helper()
	if c == nil {
		return ""
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// kill -9 of halod and a restart while a client streams through the VIP
// loses nothing: the pinned program keeps forwarding, the new halod adopts
// the maps and swaps its program in, and the stream completes.
func TestXDPSurvivesHalodRestart(t *testing.T) {
	d := newDRLab(t, 90, "native")
	halod := d.startHalod(t)
	d.waitReady(t)

	const size = 24 << 20
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	var conn net.Conn
	if err := d.cl.Do(func() (err error) { conn, err = net.DialTimeout("tcp", d.vip+":80", 2*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		conn.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprintf(conn, "GET /stream?n=%d HTTP/1.0\r\nHost: vip\r\n\r\n", size)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			done <- result{0, err}
			return
		}
		n, err := io.Copy(io.Discard, resp.Body)
		done <- result{n, err}
	}()
	time.Sleep(700 * time.Millisecond)
	if err := halod.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	halod.Wait(5 * time.Second)
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("stream ended before the restart: %d bytes, %v", r.n, r.err)
	default:
	}
	halod = d.startHalod(t)
	if waitFor(10*time.Second, func() bool { return strings.Contains(halod.Output(), "program replaced atomically") }) < 0 {
		t.Fatalf("restarted halod did not adopt the pinned program:\n%s", halod.Output())
	}
	select {
	case r := <-done:
		if r.err != nil || r.n != size {
			t.Fatalf("stream got %d of %d bytes: %v", r.n, size, r.err)
		}
		t.Logf("stream of %d bytes completed across a kill -9 and restart of halod", r.n)
	case <-time.After(60 * time.Second):
		t.Fatal("stream did not complete")
	}
	// New connections still work through the adopted data plane.
	if _, err := d.get(t); err != nil {
		t.Fatalf("new connection after restart: %v", err)
	}
}
