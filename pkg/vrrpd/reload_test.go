package vrrpd

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/vrrp"

	"github.com/halo-lb/halo/pkg/config"
)

func load(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, d := config.Load("/k.conf", config.Options{ConfigID: "x", FS: config.MapFS{"/k.conf": text}})
	if err := d.Err(false); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func inst(name, body string) string {
	return "vrrp_instance " + name + " {\n interface eth0\n" + body + "\n}\n"
}

const base = " virtual_router_id 51\n priority 100\n virtual_ipaddress {\n  10.0.0.100/24\n }"

// Reload decides per instance by name what keepalived would do.
func TestReloadDiff(t *testing.T) {
	old := load(t, "# a comment moves every position\n"+inst("KEEP", base)+inst("PRIO", strings.Replace(base, "51", "52", 1))+
		inst("VIPS", strings.Replace(base, "51", "53", 1))+inst("IFACE", strings.Replace(base, "51", "54", 1))+
		inst("VRID", strings.Replace(base, "51", "55", 1))+inst("GONE", strings.Replace(base, "51", "56", 1)))
	newer := load(t, inst("KEEP", base)+
		inst("PRIO", strings.Replace(strings.Replace(base, "51", "52", 1), "priority 100", "priority 120", 1))+
		inst("VIPS", strings.Replace(strings.Replace(base, "51", "53", 1), "10.0.0.100/24", "10.0.0.100/24\n  10.0.0.101/24", 1))+
		strings.Replace(inst("IFACE", strings.Replace(base, "51", "54", 1)), "eth0", "eth1", 1)+
		inst("VRID", strings.Replace(base, "51", "65", 1))+
		inst("NEW", strings.Replace(base, "51", "57", 1)))
	got := Diff(old, newer)
	want := map[string]Change{"KEEP": Unchanged, "PRIO": InPlace, "VIPS": InPlace, "IFACE": Restart, "VRID": Restart,
		"GONE": Removed, "NEW": Added}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %v, want %v", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("diff %v", got)
	}
	// A tracked script's weight is part of the instance it changes.
	s1 := "vrrp_script chk {\n script /bin/true\n weight -10\n}\n" + inst("T", base+"\n track_script {\n  chk\n }")
	s2 := strings.Replace(s1, "weight -10", "weight -20", 1)
	if c := Diff(load(t, s1), load(t, s2))["T"]; c != InPlace {
		t.Errorf("script weight change: %v", c)
	}
	if c := Diff(load(t, s1), load(t, s1))["T"]; c != Unchanged {
		t.Errorf("same config: %v", c)
	}
}

// Reload on a running daemon (without sockets): an unchanged instance keeps
// its state, timers and counters; a changed one is updated in place; a
// removed one goes through STOP reporting DELETED; a new one starts; a
// reload that cannot apply changes nothing.
func TestReloadApplies(t *testing.T) {
	fifo, lines := fifoReader(t)
	glob := "global_defs {\n notify_fifo " + fifo + "\n}\n"
	d, clk := testDaemon(t, glob+inst2("KEEP", 51, " priority 100")+inst2("CHANGE", 52, " priority 100")+
		inst2("GONE", 53, " priority 100\n notify_deleted"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.wctx = ctx
	keep, change := d.instances[0], d.instances[1]
	clk.t = keep.m.Deadline()
	d.apply(keep, keep.m.Tick(clk.t))
	if keep.m.State() != vrrp.Master {
		t.Fatal("KEEP not master")
	}
	next, trans := keep.m.Deadline(), keep.transitions
	lines(3 + 1) // three BACKUP at start, KEEP MASTER

	clk.t = clk.t.Add(100 * time.Millisecond)
	newer := load(t, glob+inst2("KEEP", 51, " priority 100")+
		strings.Replace(inst2("CHANGE", 52, " priority 120"), "10.0.0.100/24", "10.0.0.100/24\n  10.0.0.101/24", 1)+
		inst2("NEW", 54, " priority 100"))
	if err := d.reload(newer); err != nil {
		t.Fatal(err)
	}
	if d.instances[0] != keep || keep.m.State() != vrrp.Master || keep.m.Deadline() != next || keep.transitions != trans {
		t.Fatalf("unchanged instance disturbed: %v next %v transitions %d", keep.m.State(), keep.m.Deadline().Sub(next), keep.transitions)
	}
	if d.instances[1] != change || change.m.State() != vrrp.Backup || change.m.Priority() != 120 || len(change.vips) != 2 {
		t.Fatalf("changed instance: %v prio %d vips %d", change.m.State(), change.m.Priority(), len(change.vips))
	}
	if len(d.instances) != 3 || d.instances[2].cfg.Name != "NEW" || d.instances[2].m.State() == vrrp.Init {
		t.Fatalf("instances after reload: %d", len(d.instances))
	}
	if got := lines(1); got[0] != `INSTANCE "GONE" DELETED 100` {
		t.Fatalf("removed instance reported %q", got)
	}

	// A config that cannot be applied (a label too long for the kernel)
	// leaves everything as it was.
	bad := load(t, glob+inst2("KEEP", 51, " priority 100")+
		strings.Replace(inst2("CHANGE", 52, " priority 130"), "10.0.0.100/24", "10.0.0.100/24 label thisnameistoolong", 1))
	if err := d.reload(bad); err == nil {
		t.Fatal("bad reload accepted")
	}
	if d.cfg != newer || change.m.Priority() != 120 || len(d.instances) != 3 {
		t.Fatal("a failed reload changed the running configuration")
	}
}

// fifoReader makes a FIFO and returns a function reading n lines from it.
func fifoReader(t *testing.T) (string, func(n int) []string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	sc := bufio.NewScanner(f)
	return p, func(n int) []string {
		t.Helper()
		f.SetReadDeadline(time.Now().Add(2 * time.Second))
		var out []string
		for len(out) < n {
			if !sc.Scan() {
				t.Fatalf("FIFO: %v after %q", sc.Err(), out)
			}
			out = append(out, sc.Text())
		}
		return out
	}
}

// Before Run, Reload only replaces the configuration.
func TestReloadBeforeRun(t *testing.T) {
	a, b := load(t, inst("A", base)), load(t, inst("B", base))
	d := New(a, nil)
	if err := d.Reload(b); err != nil || d.cfg != b {
		t.Fatalf("%v, config replaced: %v", err, d.cfg == b)
	}
	if d.Reload(nil) == nil {
		t.Fatal("nil config accepted")
	}
}
