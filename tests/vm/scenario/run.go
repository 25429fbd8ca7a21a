package scenario

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Checks are the backend's views of the kernel table, when it has one.
type Checks struct {
	// Real checks how the table holds a real: up (its weight), drained
	// (weight 0, inhibit_on_failure) or absent.
	Real func(s *Setup, r *Real, state string) error
	// Service asserts what the table says about the service as a whole
	// (e.g. the persistence timeout).
	Service func(t *testing.T, s *Setup)
	// Stopped asserts the table after a clean stop of halod.
	Stopped func(t *testing.T, s *Setup)
}

// Run is the scenario: start halod, reach every real through the VIP, fail
// one real's health check and see it leave new-connection selection, bring
// it back, stop halod.
func Run(t *testing.T, b Backend, c Checks, o Options) {
	start := time.Now()
	phase := func(what string) { t.Logf("%5.1f s: %s", time.Since(start).Seconds(), what) }
	s := Build(t, o)
	phase("topology built")
	if b.Prepare != nil {
		b.Prepare(t, s)
	}
	s.StartHalod(t, b)
	phase("halod started")
	persistent := o.Persistence > 0

	seen := map[string]bool{}
	ready := until(20*time.Second, func() bool {
		select {
		case <-s.halod.Done():
			return true
		default:
		}
		if body, err := s.Get(); err == nil {
			seen[body] = true
		}
		return len(seen) == 3 || (persistent && len(seen) == 1)
	})
	select {
	case <-s.halod.Done():
		t.Fatalf("halod exited:\n%s", s.halod.Output())
	default:
	}
	if !ready {
		t.Fatalf("after 20 s the client reached only %v through %s (%s)%s", seen, s.VIP, o.Method, table(t, b, s))
	}

	phase(fmt.Sprintf("client reached %d real(s)", len(seen)))
	got := s.Spread(30)
	phase(fmt.Sprintf("30 connections: %v", got))
	var sticky string
	if persistent {
		for name, n := range got {
			if n == 30 && name != "error" {
				sticky = name
			}
		}
		if sticky == "" {
			t.Fatalf("persistence: 30 connections from one client went to %v, want one real", got)
		}
	} else {
		for _, r := range s.Reals {
			if got[r.Name] < 3 {
				t.Errorf("%s got %d of 30 connections (%v)", r.Name, got[r.Name], got)
			}
		}
		if got["error"] > 0 {
			t.Errorf("%d of 30 connections failed (%v)", got["error"], got)
		}
	}
	if c.Service != nil {
		c.Service(t, s)
	}
	for _, r := range s.Reals {
		if c.Real != nil {
			if err := c.Real(s, r, "up"); err != nil {
				t.Error(err)
			}
		}
	}
	// The data plane's counters reach /metrics under the service's key.
	metric := regexp.MustCompile(`(?m)^halo_dataplane_packets_total\{virtual_server="tcp:` + regexp.QuoteMeta(s.VIP) + `:80"\} (\S+)$`)
	var packets float64
	if !until(6*time.Second, func() bool {
		if m := metric.FindStringSubmatch(s.Metrics(t)); m != nil {
			packets, _ = strconv.ParseFloat(m[1], 64)
		}
		return packets > 0
	}) {
		t.Errorf("halo_dataplane_packets_total for tcp:%s:80 is %v after 30+ connections", s.VIP, packets)
	}

	victim := s.Reals[2]
	if persistent {
		for _, r := range s.Reals {
			if r.Name == sticky {
				victim = r
			}
		}
	}
	phase(fmt.Sprintf("metrics: %v packets", packets))
	// haloctl dump shows the same counters per virtual and real server.
	var vsPackets, realPackets uint64
	for _, vs := range s.Dump(t).VirtualServers {
		if vs.Counters != nil {
			vsPackets += vs.Counters.Packets
		}
		for _, r := range vs.Reals {
			if r.Counters != nil {
				realPackets += r.Counters.Packets
			}
		}
	}
	if vsPackets == 0 || realPackets == 0 {
		t.Errorf("haloctl dump counters: service %d packets, reals %d packets; want both above zero", vsPackets, realPackets)
	}
	victim.Stop()
	// The checker notices within delay_loop + connect_timeout; until then
	// connections to the victim are refused.
	if !until(20*time.Second, func() bool {
		g := s.Spread(10)
		return g["error"] == 0 && g[victim.Name] == 0
	}) {
		t.Fatalf("20 s after %s failed, connections still reach it or fail%s", victim.Name, table(t, b, s))
	}
	phase(victim.Name + " failed and left selection")
	got = s.Spread(30)
	if got[victim.Name] > 0 || got["error"] > 0 {
		t.Errorf("after %s failed: %v", victim.Name, got)
	}
	if c.Real != nil {
		want := "absent"
		if o.Inhibit {
			want = "drained"
		}
		if err := c.Real(s, victim, want); err != nil {
			t.Error(err)
		}
	}

	victim.Start(t)
	if persistent {
		// The client's persistence template now points at another real;
		// the victim is back in the table but this client stays put.
		var err error
		if c.Real != nil && !until(15*time.Second, func() bool { err = c.Real(s, victim, "up"); return err == nil }) {
			t.Errorf("15 s after %s recovered: %v", victim.Name, err)
		}
	} else if !until(20*time.Second, func() bool { body, _ := s.Get(); return body == victim.Name }) {
		t.Fatalf("20 s after %s recovered it gets no connections%s", victim.Name, table(t, b, s))
	}

	phase(victim.Name + " is back")
	s.StopHalod(t)
	phase("halod stopped")
	if c.Stopped != nil {
		c.Stopped(t, s)
	}
}

func table(t *testing.T, b Backend, s *Setup) string {
	if b.Table == nil {
		return ""
	}
	return fmt.Sprintf("\n%s table:\n%s", b.Name, b.Table(t, s))
}
