package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// tunReal makes ns a TUN real behind its eth0: the VIP on lo (for IPv4 with
// ARP for it ignored and rp_filter off, as for DR), bpf/tundecap.c on eth0's
// ingress stripping ipip/ip6ip6 and, when guePort is not 0, outer
// IP + UDP + GUE to that port (this kernel has no ipip or fou module: the
// program stands in for `ip fou add` and a tunnel device), and when name is
// not empty an HTTP server on port 80 that answers its name. It returns the
// program's decapsulation counters.
func tunReal(t *testing.T, ns *lab.NS, vip string, guePort uint16, name string) *ebpf.Map {
	t.Helper()
	if strings.Contains(vip, ":") {
		ns.IP("-6", "addr", "add", vip+"/128", "dev", "lo", "nodad")
	} else {
		ns.IP("addr", "add", vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			ns.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			ns.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
			ns.Sysctl("net.ipv4.conf."+k+".rp_filter", "0")
		}
	}
	spec, err := loadTun()
	if err != nil {
		t.Fatal(err)
	}
	// The program compares the port as it sits in the packet.
	if err := spec.Variables[tunVarGuePort].Set(binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, guePort))); err != nil {
		t.Fatal(err)
	}
	var objs tunObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatalf("load the decapsulation program: %v", err)
	}
	t.Cleanup(func() { objs.Close() })
	var lk link.Link
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		lk, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: objs.TunDecap, Attach: ebpf.AttachTCXIngress})
		return err
	}); err != nil {
		t.Fatalf("attach the decapsulation program in %s: %v", ns.Tag, err)
	}
	t.Cleanup(func() { lk.Close() })
	if name != "" {
		var ln net.Listener
		if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) }))
	}
	return objs.DecapStats
}
