package xdp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// Upgrades across map layouts, in a namespace of its own (a veth to attach
// to, a bpffs of the lab's): a data plane whose layout differs from the
// pinned one (here: other sizes, as a new version's would) builds its maps
// beside the old ones while the old program keeps its link, swaps the
// program in the same link after its first apply, and removes the old
// layout's pins. A start that fails leaves the pinned program attached.
func TestLayoutChangeSwapsAfterFirstApply(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	ns := l.NS("up")
	ns.IP("link", "add", "up0", "type", "veth", "peer", "name", "up1")
	ns.IP("link", "set", "up0", "up")
	ns.IP("link", "set", "up1", "up")
	pins := filepath.Join(l.BPFFS(), "halo")
	svcs := []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")}
	err := ns.Do(func() error {
		old, err := New(Options{Interfaces: []string{"up0"}, Mode: "generic", PinPath: pins, KeepOnClose: true,
			MaxServices: 8, ResolveMAC: fakeResolve})
		if err != nil {
			return err
		}
		if err := old.Apply(context.Background(), svcs); err != nil {
			return err
		}
		oldDir := old.mapDir
		old.Close() // kept: the program stays attached through its pinned link
		// t.Fatal must not run on Do's goroutine: failures are returned.
		progID := func() uint32 {
			l, err := link.LoadPinnedLink(filepath.Join(pins, "link_up0"), nil)
			if err != nil {
				return 0 // no pinned link: differs from any program id
			}
			defer l.Close()
			info, err := l.Info()
			if err != nil {
				return 0
			}
			return uint32(info.Program)
		}
		before := progID()

		// A start that fails (an interface that does not exist) leaves
		// the running program and its pins alone.
		if _, err := New(Options{Interfaces: []string{"up0", "nosuch9"}, PinPath: pins, ResolveMAC: fakeResolve}); err == nil {
			return fmt.Errorf("start with a missing interface succeeded")
		}
		if progID() != before {
			return fmt.Errorf("a failed start replaced the program")
		}
		if _, err := os.Stat(oldDir); err != nil {
			return fmt.Errorf("a failed start removed the old maps: %v", err)
		}

		// The new layout: the old program forwards until the first apply.
		nb, err := New(Options{Interfaces: []string{"up0"}, Mode: "generic", PinPath: pins, ResolveMAC: fakeResolve})
		if err != nil {
			return err
		}
		defer nb.Close()
		if len(nb.pending) != 1 || progID() != before {
			return fmt.Errorf("new layout swapped before its maps held anything (pending %d)", len(nb.pending))
		}
		if err := nb.Apply(context.Background(), svcs); err != nil {
			return err
		}
		if len(nb.pending) != 0 || progID() == before {
			return fmt.Errorf("new layout did not swap its program in after the first apply")
		}
		if _, err := os.Stat(oldDir); !os.IsNotExist(err) {
			return fmt.Errorf("old layout's pins left behind: %v", err)
		}
		ents, _ := os.ReadDir(pins)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if len(names) != 2 || !strings.HasPrefix(strings.Join(names, " "), "link_up0 maps-v") {
			return fmt.Errorf("pins after the upgrade: %v", names)
		}
		opts := runOpts(tcp4(vip4, 80, 1000).Bytes())
		if v, err := nb.Prog().Run(opts); err != nil || v != xdpTX || realOf(opts.DataOut) != "10.1.0.11" {
			return fmt.Errorf("new program: verdict %d to %s (%v)", v, realOf(opts.DataOut), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A map an earlier build of the same layout pinned and this one no longer
// has (vip_stats: service counters are now summed from the entries) loses
// its pin when a new halod adopts the directory; the other pins stay.
func TestRetiredPinRemovedOnAdoption(t *testing.T) {
	pins := pinDir(t)
	o := Options{PinPath: pins, ResolveMAC: fakeResolve}
	o.defaults()
	dir := filepath.Join(pins, layoutDir(o))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(filepath.Join(dir, "vip_stats")); err != nil {
		t.Fatal(err)
	}
	b, err := LoadWith(Options{PinPath: pins, ResolveMAC: fakeResolve, KeepOnClose: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := os.Stat(filepath.Join(dir, "vip_stats")); !os.IsNotExist(err) {
		t.Fatalf("retired pin still there (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "real_stats")); err != nil {
		t.Fatalf("a current map's pin is missing: %v", err)
	}
}
