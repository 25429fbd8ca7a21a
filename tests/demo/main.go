// Command demo builds halo's lab topology in network namespaces and shows
// the data plane working on it; `make demo` runs it (as root). Everything it
// creates is removed when it exits, also on failure or Ctrl-C.
//
// Topology: a bridge in its own namespace, with a client, two directors and
// two real servers plugged into it on 10.210.0.0/24.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cilium/ebpf/link"
	"github.com/halo-lb/halo/pkg/lab"
	"github.com/halo-lb/halo/pkg/xdpcount"
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
			r.close()
		}()
		demo(r)
	}()
	os.Exit(code)
}

func demo(r *runner) {
	l := lab.New(r)
	sw := l.Switch("sw")
	nodes := map[string]string{"client": "10.210.0.2", "dir1": "10.210.0.11", "dir2": "10.210.0.12",
		"real1": "10.210.0.21", "real2": "10.210.0.22"}
	ns := map[string]*lab.NS{}
	for _, name := range []string{"client", "dir1", "dir2", "real1", "real2"} {
		n := l.NS(name)
		sw.Plug(n, "eth0")
		n.Addr("eth0", nodes[name]+"/24")
		ns[name] = n
		fmt.Printf("node %-6s %s in namespace %s\n", name, nodes[name], n.Name)
	}

	p, err := xdpcount.Load()
	if err != nil {
		panic(err)
	}
	defer p.Close()
	var xl link.Link
	if err := ns["dir1"].Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		xl, err = p.Attach(ifi.Index)
		return err
	}); err != nil {
		panic(err)
	}
	defer xl.Close()
	fmt.Println("XDP protocount attached to dir1/eth0")

	out := ns["client"].MustExec("ping", "-c", "5", "-i", "0.2", "-W", "2", nodes["dir1"])
	fmt.Println(lastLines(out, 2))
	c, err := p.Read()
	if err != nil {
		panic(err)
	}
	fmt.Printf("dir1 XDP counters: ICMPv4 %d packets, ARP %d, IPv6 ICMP %d\n",
		c[xdpcount.IPv4ICMP].Packets, c[xdpcount.ARP].Packets, c[xdpcount.IPv6ICMP].Packets)
	if c[xdpcount.IPv4ICMP].Packets < 5 {
		panic("XDP did not see the client's pings")
	}
	fmt.Println("demo OK; removing the lab")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
