package e2e

import (
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// BenchmarkFailover measures, for halod and for keepalived in the same lab,
// the time from SIGKILL of the master (its VIP removed at the same moment,
// as when a host dies) to the VIP answering the client's pings again, at
// advert_int 1 s and 10 cs. It is a measurement, not a test: run it with
// `make bench` and compare the two columns of one run.
func BenchmarkFailover(b *testing.B) {
	lab.RequireRoot(b)
	requireKeepalived(b)
	const runs = 3
	type row struct {
		impl, advert string
		ms           []float64
	}
	var rows []row
	subnet := 120
	for _, advert := range []string{"1", "0.1"} {
		for _, impl := range []string{"halod", "keepalived"} {
			r := row{impl: impl, advert: advert}
			for i := 0; i < runs; i++ {
				subnet++
				d := measureFailover(b, subnet, impl, advert)
				r.ms = append(r.ms, float64(d)/float64(time.Millisecond))
			}
			rows = append(rows, r)
		}
	}
	fmt.Fprintf(os.Stderr, "\nfailover, master SIGKILL -> VIP answering at the client (%d runs each)\n", runs)
	fmt.Fprintf(os.Stderr, "%-11s %-10s %9s %9s %9s\n", "impl", "advert_int", "min ms", "median ms", "max ms")
	for _, r := range rows {
		sort.Float64s(r.ms)
		fmt.Fprintf(os.Stderr, "%-11s %-10s %9.0f %9.0f %9.0f\n", r.impl, r.advert+"s", r.ms[0], r.ms[len(r.ms)/2], r.ms[len(r.ms)-1])
		b.ReportMetric(r.ms[len(r.ms)/2], fmt.Sprintf("ms-median-%s-%ss", r.impl, r.advert))
	}
}

func measureFailover(b *testing.B, subnet int, impl, advert string) time.Duration {
	b.Helper()
	var d time.Duration
	b.Run(fmt.Sprintf("%s-%s-%d", impl, advert, subnet), func(b *testing.B) {
		v := newVRRPLab(b, subnet)
		vip := fmt.Sprintf("10.%d.0.100", subnet)
		extra := "  version 3\n  advert_int " + advert
		c1 := writeFile(b, "n1.conf", vrrpConf("n1", 150, extra, vip+"/24 dev eth0"))
		c2 := writeFile(b, "n2.conf", vrrpConf("n2", 100, extra, vip+"/24 dev eth0"))
		start := func(ns *lab.NS, conf string) *lab.Proc {
			if impl == "halod" {
				return startHalod(b, ns, conf)
			}
			return startKeepalived(b, ns, conf)
		}
		p1 := start(v.n1, c1)
		start(v.n2, c2)
		if waitFor(10*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
			b.Fatal("no master")
		}
		time.Sleep(time.Second)
		// Prime the client's neighbour entry with the old master.
		v.cl.MustExec("ping", "-c", "1", "-W", "1", vip)

		var conn *icmp.PacketConn
		if err := v.cl.Do(func() (err error) {
			conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
			return err
		}); err != nil {
			b.Fatal(err)
		}
		defer conn.Close()

		if err := p1.Signal(syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		v.n1.IP("addr", "del", vip+"/24", "dev", "eth0")
		dst := &net.IPAddr{IP: net.ParseIP(vip)}
		buf := make([]byte, 1500)
		for seq := 1; time.Since(killed) < 15*time.Second; seq++ {
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x4a4c, Seq: seq, Data: []byte("halo")}}
			wb, _ := msg.Marshal(nil)
			if _, err := conn.WriteTo(wb, dst); err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			for {
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					break
				}
				if m, err := icmp.ParseMessage(1, buf[:n]); err == nil && m.Type == ipv4.ICMPTypeEchoReply {
					if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq {
						d = time.Since(killed)
						return
					}
				}
			}
		}
		b.Fatal("the VIP never answered after the failover")
	})
	return d
}
