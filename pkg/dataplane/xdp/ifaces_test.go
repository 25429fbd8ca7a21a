package xdp

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// The egress interfaces follow the system without any real changing: an
// interface no real uses (where NAT replies leave) gets its new MAC
// written, and one that is deleted gives back its if_macs entry and its
// index, which the next interface gets. The backend's background work
// does it (every 50 ms here), in the namespace the backend was made in
// although it runs on a goroutine of its own.
func TestEgressFollowsInterfaces(t *testing.T) {
	defer func(d time.Duration) { refreshEvery = d }(refreshEvery)
	refreshEvery = 50 * time.Millisecond
	ns := egressNS(t, "egf", "ef0")
	ns.IP("link", "add", "ef1", "type", "veth", "peer", "name", "ef1p")
	ns.IP("link", "set", "ef1", "address", "02:00:00:00:f1:01")
	onEgress(t, ns, "ef0", func(b *Backend, eg *net.Interface) error {
		// As attach registers the interfaces the program runs on.
		register := func(ifindex int) (uint8, error) {
			b.applyMu.Lock()
			defer b.applyMu.Unlock()
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.egress(ifindex)
		}
		ef1, err := net.InterfaceByName("ef1")
		if err != nil {
			return err
		}
		k := uint32(ef1.Index)
		idx, err := register(ef1.Index)
		if err != nil || idx == 0 {
			return fmt.Errorf("register ef1: index %d, %v", idx, err)
		}
		idx0, err := register(eg.Index)
		if err != nil {
			return err
		}
		entries := func(k uint32, idx uint8) (net.HardwareAddr, net.HardwareAddr, error) {
			var m lbReal
			if err := b.objs.IfMacs.Lookup(k, &m); err != nil {
				return nil, nil, fmt.Errorf("if_macs[%d]: %w", k, err)
			}
			var e lbEgressIf
			if err := b.objs.EgressIfs.Lookup(uint32(idx), &e); err != nil {
				return nil, nil, err
			}
			if m.Egress != idx || e.Ifindex != k {
				return nil, nil, fmt.Errorf("if_macs[%d] carries index %d, egress_ifs[%d] names %d; want %d, %d", k, m.Egress, idx, e.Ifindex, idx, k)
			}
			return net.HardwareAddr(m.Mac[:]), net.HardwareAddr(e.Mac[:]), nil
		}
		if out, err := ns.Exec("ip", "link", "set", "ef1", "address", "02:00:00:00:f1:02"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		err = within(func() error {
			m, e, err := entries(k, idx)
			if err == nil && (m.String() != "02:00:00:00:f1:02" || e.String() != "02:00:00:00:f1:02") {
				err = fmt.Errorf("after ef1's MAC change: if_macs %s, egress_ifs %s", m, e)
			}
			return err
		})
		if err != nil {
			return err
		}
		if out, err := ns.Exec("ip", "link", "del", "ef1"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		err = within(func() error {
			var m1 lbReal
			if err := b.objs.IfMacs.Lookup(k, &m1); err == nil {
				return fmt.Errorf("if_macs still holds deleted ef1 (%d)", k)
			}
			var gone lbEgressIf
			if err := b.objs.EgressIfs.Lookup(uint32(idx), &gone); err != nil || gone.Ifindex != 0 {
				return fmt.Errorf("egress_ifs[%d] after ef1 left: %+v, %v", idx, gone, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if _, _, err := entries(uint32(eg.Index), idx0); err != nil {
			return fmt.Errorf("ef0, untouched: %w", err)
		}
		if out, err := ns.Exec("ip", "link", "add", "ef2", "type", "veth", "peer", "name", "ef2p"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		ef2, err := net.InterfaceByName("ef2")
		if err != nil {
			return err
		}
		idx2, err := register(ef2.Index)
		if err != nil {
			return err
		}
		if idx2 != idx {
			return fmt.Errorf("ef2 got index %d, want ef1's freed %d", idx2, idx)
		}
		_, _, err = entries(uint32(ef2.Index), idx2)
		return err
	})
}

// A dataplane interface deleted and created again under its name gets the
// program back from the background refresh (the kernel detaches XDP with
// the device): the same program, so the same maps, on the new device, its
// pinned link replaced, and the new device registered as an egress.
func TestProgramFollowsRecreatedInterface(t *testing.T) {
	defer func(d time.Duration) { refreshEvery = d }(refreshEvery)
	refreshEvery = 50 * time.Millisecond
	l := lab.New(t)
	ns := egressNS(t, "rat", "ra0")
	pins := filepath.Join(l.BPFFS(), "halo")
	err := ns.Do(func() error {
		b, err := New(Options{Interfaces: []string{"ra0"}, PinPath: pins, ResolveMAC: fakeResolve})
		if err != nil {
			return err
		}
		defer b.Close()
		info, err := b.Prog().Info()
		if err != nil {
			return err
		}
		progID, _ := info.ID()
		// on reports the program XDP runs on ra0 and ra0's index.
		on := func() (uint32, int, error) {
			lk, err := netlink.LinkByName("ra0")
			if err != nil {
				return 0, 0, err
			}
			if x := lk.Attrs().Xdp; x != nil && x.Attached {
				return x.ProgId, lk.Attrs().Index, nil
			}
			return 0, lk.Attrs().Index, nil
		}
		if id, _, err := on(); err != nil || id != uint32(progID) {
			return fmt.Errorf("at start ra0 runs program %d (%v), want %d", id, err, progID)
		}
		for _, args := range [][]string{{"link", "del", "ra0"}, {"link", "add", "ra0", "type", "veth", "peer", "name", "ra0p"},
			{"link", "set", "ra0", "up"}, {"link", "set", "ra0p", "up"}} {
			if out, err := ns.Exec("ip", args...); err != nil {
				return fmt.Errorf("ip %v: %v: %s", args, err, out)
			}
		}
		return within(func() error {
			id, idx, err := on()
			if err != nil || id != uint32(progID) {
				return fmt.Errorf("after ra0 was created anew it runs program %d (%v), want %d", id, err, progID)
			}
			pl, err := link.LoadPinnedLink(filepath.Join(pins, "link_ra0"), nil)
			if err != nil {
				return fmt.Errorf("pinned link after the re-attach: %w", err)
			}
			li, err := pl.Info()
			pl.Close()
			if err != nil {
				return err
			}
			if x := li.XDP(); x == nil || int(x.Ifindex) != idx {
				return fmt.Errorf("the pinned link is not the new device's (%+v, ifindex %d)", x, idx)
			}
			var m lbReal
			if err := b.objs.IfMacs.Lookup(uint32(idx), &m); err != nil {
				return fmt.Errorf("the new ra0 (%d) is not an egress: %w", idx, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// within polls cond until it holds, for at most 5 s, and returns its last
// error: the background refresh runs on its own clock.
func within(cond func() error) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
