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
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// flowLab: a client, two directors (VRRP + XDP DR on both) and three real
// servers holding the VIP on lo, on one bridge.
type flowLab struct {
	l      *lab.Lab
	subnet int
	vip    string
	cl     *lab.NS
	dirs   [2]*lab.NS
	reals  []*lab.NS
	bpffs  [2]string
	socks  [2]string
	confs  [2]string
	halods [2]*lab.Proc
}

// patternByte is byte i of a stream with the given seed: every stream
// carries its own content, so a byte from another real or another stream
// is caught, not only a short count.
func patternByte(seed, i int) byte { return byte(i*7 + seed*13 + i>>11) }

// serveFlowReal answers GET /stream?n=BYTES&seed=S with the pattern, paced
// so a stream lasts a few seconds, and GET / with the real's name.
func serveFlowReal(t *testing.T, ns *lab.NS, name string) {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", "0.0.0.0:80"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/stream" {
			fmt.Fprintf(w, "%s\n", name)
			return
		}
		n, _ := strconv.Atoi(req.URL.Query().Get("n"))
		seed, _ := strconv.Atoi(req.URL.Query().Get("seed"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("X-Real", name)
		chunk := make([]byte, 32<<10)
		for sent := 0; sent < n; {
			c := chunk[:min(len(chunk), n-sent)]
			for i := range c {
				c[i] = patternByte(seed, sent+i)
			}
			if _, err := w.Write(c); err != nil {
				return
			}
			sent += len(c)
			time.Sleep(4 * time.Millisecond)
		}
	}))
}

func newFlowLab(t *testing.T, subnet int, sched string, floodOpts string) *flowLab {
	lab.RequireRoot(t)
	l := lab.New(t)
	f := &flowLab{l: l, subnet: subnet, vip: fmt.Sprintf("10.%d.0.100", subnet), cl: l.NS("cl")}
	sw := l.Switch("sw")
	plug := func(n *lab.NS, host int, director bool) {
		port := sw.Plug(n, "eth0")
		if director {
			// XDP_TX'd frames need an XDP program on the veth peer
			// (docs/lab.md#veth-peer-needs-xdp).
			attachPass(t, sw.NS, port)
		}
		n.Addr("eth0", fmt.Sprintf("10.%d.0.%d/24", subnet, host))
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	plug(f.cl, 2, false)
	var rs strings.Builder
	for i := 0; i < 3; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		plug(ns, 11+i, false)
		ns.IP("addr", "add", f.vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			ns.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			ns.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		serveFlowReal(t, ns, fmt.Sprintf("real%d", i+1))
		f.reals = append(f.reals, ns)
		fmt.Fprintf(&rs, "  real_server 10.%d.0.%d 80 {\n    weight %d\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", subnet, 11+i, 1+i%2)
	}
	algo := ""
	if sched != "" {
		algo = "  lb_algo " + sched + "\n"
	}
	for i := range f.dirs {
		f.dirs[i] = l.NS(fmt.Sprintf("d%d", i+1))
		plug(f.dirs[i], 1+2*i, true) // .1 and .3
		f.bpffs[i] = filepath.Join(l.BPFFS(), "halo")
		f.socks[i] = filepath.Join(t.TempDir(), "halod.sock")
		f.confs[i] = writeFile(t, fmt.Sprintf("d%d.conf", i+1), fmt.Sprintf(`global_defs {
  router_id d%d
  vrrp_garp_master_delay 1
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority %d
  version 3
  advert_int 0.1
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
virtual_server %s 80 {
  delay_loop 1
%s  lb_kind DR
  protocol TCP
%s}
dataplane {
  backend xdp
  interface eth0
%s}
`, i+1, 150-50*i, f.vip, f.vip, algo, rs.String(), floodOpts))
	}
	return f
}

func (f *flowLab) start(t *testing.T, i int) {
	f.halods[i] = startHalod(t, f.dirs[i], f.confs[i], "--dataplane", "xdp", "--bpffs", f.bpffs[i], "--control", f.socks[i],
		"--metrics-addr", "127.0.0.1:9650")
}

// waitServing waits until director i sees every real up and, when it is
// the master, the VIP answers.
func (f *flowLab) waitServing(t *testing.T, i int) {
	t.Helper()
	if waitFor(20*time.Second, func() bool {
		st := haloctlStatus(t, f.socks[i])
		if st == nil || len(st.VirtualServers) == 0 || len(st.VirtualServers[0].Reals) != 3 {
			return false
		}
		for _, r := range st.VirtualServers[0].Reals {
			if !r.Up {
				return false
			}
		}
		return true
	}) < 0 {
		t.Fatalf("director %d never saw all reals up: %+v\n%s", i+1, haloctlStatus(t, f.socks[i]), f.halods[i].Output())
	}
}

type streamResult struct {
	real string
	n    int
	err  error
}

// openStreams starts k streams of size bytes through the VIP; each checks
// every byte against its pattern.
func (f *flowLab) openStreams(t *testing.T, k, size int) ([]chan streamResult, []string) {
	t.Helper()
	out := make([]chan streamResult, k)
	reals := make([]string, k)
	for s := 0; s < k; s++ {
		var c net.Conn
		if err := f.cl.Do(func() (err error) { c, err = net.DialTimeout("tcp", f.vip+":80", 3*time.Second); return err }); err != nil {
			t.Fatalf("stream %d: %v", s, err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(90 * time.Second))
		fmt.Fprintf(c, "GET /stream?n=%d&seed=%d HTTP/1.0\r\nHost: vip\r\n\r\n", size, s)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("stream %d: %v", s, err)
		}
		reals[s] = resp.Header.Get("X-Real")
		ch := make(chan streamResult, 1)
		out[s] = ch
		go func(seed int) {
			buf := make([]byte, 64<<10)
			n := 0
			for {
				m, err := resp.Body.Read(buf)
				for i := 0; i < m; i++ {
					if buf[i] != patternByte(seed, n+i) {
						ch <- streamResult{reals[seed], n + i, fmt.Errorf("byte %d differs", n+i)}
						return
					}
				}
				n += m
				if err == io.EOF {
					ch <- streamResult{reals[seed], n, nil}
					return
				}
				if err != nil {
					ch <- streamResult{reals[seed], n, err}
					return
				}
			}
		}(s)
	}
	return out, reals
}

func (f *flowLab) finish(t *testing.T, streams []chan streamResult, reals []string, size int) {
	t.Helper()
	spread := map[string]int{}
	for s, ch := range streams {
		select {
		case r := <-ch:
			if r.err != nil || r.n != size {
				t.Fatalf("stream %d (on %s) got %d of %d bytes: %v", s, reals[s], r.n, size, r.err)
			}
			spread[reals[s]]++
		case <-time.After(90 * time.Second):
			t.Fatalf("stream %d did not finish", s)
		}
	}
	t.Logf("%d streams of %d bytes finished byte-exact; reals: %v", len(streams), size, spread)
}

// metric reads one halo_xdp_packets_total reason from director i.
func (f *flowLab) metric(t *testing.T, i int, reason string) float64 {
	t.Helper()
	var body string
	f.dirs[i].Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9650", 2*time.Second)
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
	var v float64
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, `reason="`+reason+`"`) && strings.HasPrefix(line, "halo_xdp_packets_total") {
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
		}
	}
	return v
}

const (
	flowStreams = 6
	flowSize    = 12 << 20
)

// Two directors with VRRP and XDP DR; streams run through the master; the
// master dies (halod SIGKILL and its link down); the backup takes the VIP
// with an empty flow table, resolves every established flow through the
// same Maglev table, and each stream finishes byte-exact on its real. With
// keepalived's default scheduler (wlc, 5-tuple hash) and with mh.
func TestFlowsSurviveDirectorFailover(t *testing.T) {
	for i, sched := range []string{"", "mh"} {
		name := "default"
		if sched != "" {
			name = sched
		}
		t.Run(name, func(t *testing.T) {
			f := newFlowLab(t, 120+i, sched, "")
			f.start(t, 0)
			f.start(t, 1)
			f.waitServing(t, 0)
			f.waitServing(t, 1)
			if waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[0], f.vip) }) < 0 {
				t.Fatal("d1 never became master")
			}
			streams, reals := f.openStreams(t, flowStreams, flowSize)
			time.Sleep(500 * time.Millisecond)
			if err := f.halods[0].Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			f.halods[0].Wait(5 * time.Second)
			f.dirs[0].IP("link", "set", "eth0", "down")
			if waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[1], f.vip) }) < 0 {
				t.Fatalf("d2 never took the VIP:\n%s", f.halods[1].Output())
			}
			f.finish(t, streams, reals, flowSize)
			// The streams really crossed d2 without flow-table entries:
			// by the table slot (ring), or as flows older than a table
			// change (ct_prev: d2's tables change as real MACs resolve).
			if ring, prev := f.metric(t, 1, "ring"), f.metric(t, 1, "ct_prev"); ring+prev <= 0 {
				t.Fatalf("d2 forwarded no established-flow packet through its table (ring %v, ct_prev %v)", ring, prev)
			}
			if _, err := f.cl.HTTPGet(f.vip+":80", "/", 3*time.Second); err != nil {
				t.Fatalf("new connection on the new master: %v", err)
			}
		})
	}
}

// The same streams through one director that goes through what a reboot
// does to it (halod SIGKILL, link down, pins and VIP gone, link up, halod
// started): the new program starts with empty maps, and every established
// flow lands on the same real again. (With the link up and the VIP still
// on the director, a gap without any program would let the director's own
// stack answer the flows with resets: that is why the link is down first.)
func TestFlowsSurviveRestartWithoutPins(t *testing.T) {
	for i, sched := range []string{"", "mh"} {
		name := "default"
		if sched != "" {
			name = sched
		}
		t.Run(name, func(t *testing.T) {
			f := newFlowLab(t, 122+i, sched, "")
			f.start(t, 0)
			f.waitServing(t, 0)
			if waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[0], f.vip) }) < 0 {
				t.Fatal("d1 never became master")
			}
			streams, reals := f.openStreams(t, flowStreams, flowSize)
			time.Sleep(500 * time.Millisecond)
			if err := f.halods[0].Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			f.halods[0].Wait(5 * time.Second)
			f.dirs[0].IP("link", "set", "eth0", "down")
			f.dirs[0].MustExec("rm", "-rf", f.bpffs[0])
			f.dirs[0].IP("addr", "del", f.vip+"/24", "dev", "eth0")
			f.dirs[0].IP("link", "set", "eth0", "up")
			f.start(t, 0)
			f.waitServing(t, 0)
			f.finish(t, streams, reals, flowSize)
			if ring, prev := f.metric(t, 0, "ring"), f.metric(t, 0, "ct_prev"); ring+prev <= 0 {
				t.Fatalf("the restarted director forwarded no established-flow packet through its table (ring %v, ct_prev %v)", ring, prev)
			}
		})
	}
}
