package vipfw

import (
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
)

// inNewNetns runs f with an nftables connection inside a fresh network
// namespace, so the test touches nothing of the host. It returns the
// namespace's name as `ip netns` knows it, for `nft` checks.
func inNewNetns(t *testing.T) (*nftables.Conn, string) {
	t.Helper()
	lab.RequireRoot(t)
	testkit.Require(t, "nft") // it reads back what the kernel holds
	name := "halo-vipfw-" + strings.ReplaceAll(t.Name(), "/", "-")
	_ = exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTables(); err != nil {
		t.Skipf("no nftables support in this kernel: %v", err)
	}
	return c, name
}

func nftList(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	return string(out), err
}

// The ruleset the kernel accepts and holds is keepalived's: tables ip and
// ip6, chains in/out at the configured priority, the VIPs in the sets, the
// ND accept; releasing empties the sets; Close removes both tables; a
// table left by an earlier run is replaced at Open.
func TestFirewallInKernel(t *testing.T) {
	conn, ns := inNewNetns(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A stale table from a "crashed" run, with a VIP in it.
	stale := exec.Command("ip", "netns", "exec", ns, "nft", "add table ip halotest; add chain ip halotest in { type filter hook input priority -1; policy accept; }; add set ip halotest vips { type ipv4_addr; elements = { 192.0.2.99 } }")
	if out, err := stale.CombinedOutput(); err != nil {
		t.Fatalf("stale table: %v: %s", err, out)
	}
	fw, err := Open(Config{Table: "halotest", Priority: -5, Counters: true}, conn, log)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := nftList(t, ns, "list", "table", "ip", "halotest"); err == nil {
		t.Fatalf("stale table still there after Open:\n%s", out)
	}
	err = fw.Block("VI_1", []VIP{
		{Addr: netip.MustParseAddr("192.0.2.10")},
		{Addr: netip.MustParseAddr("2001:db8::10")},
		{Addr: netip.MustParseAddr("fe80::10"), Dev: "lo", Ifindex: 1},
		{Addr: netip.MustParseAddr("fe80::11"), Dev: "lo", Ifindex: 1, ByName: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	v4, err := nftList(t, ns, "list", "table", "ip", "halotest")
	if err != nil {
		t.Fatalf("%v: %s", err, v4)
	}
	for _, want := range []string{"chain in", "hook input priority filter - 5", "chain out", "hook output",
		"ip daddr @vips counter packets 0 bytes 0 drop", "ip saddr @vips counter packets 0 bytes 0 drop", "192.0.2.10"} {
		if !strings.Contains(v4, want) {
			t.Errorf("ip table lacks %q:\n%s", want, v4)
		}
	}
	v6, err := nftList(t, ns, "list", "table", "ip6", "halotest")
	if err != nil {
		t.Fatalf("%v: %s", err, v6)
	}
	for _, want := range []string{"2001:db8::10", "nd-neighbor-solicit", "nd-neighbor-advert",
		"ip6 daddr fe80::/10", "goto in_link_local", "ip6 saddr fe80::/10", "goto out_link_local",
		"ip6 daddr @vips", "ip6 saddr @vips", "vips_link_local", "vips_link_local_name", "fe80::10", "fe80::11"} {
		if !strings.Contains(v6, want) {
			t.Errorf("ip6 table lacks %q:\n%s", want, v6)
		}
	}
	t.Logf("ip:\n%s\nip6:\n%s", v4, v6)
	if err := fw.Unblock("VI_1"); err != nil {
		t.Fatal(err)
	}
	v4, _ = nftList(t, ns, "list", "set", "ip", "halotest", "vips")
	if strings.Contains(v4, "192.0.2.10") {
		t.Errorf("VIP still in the set after Unblock:\n%s", v4)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"ip", "ip6"} {
		if out, err := nftList(t, ns, "list", "table", fam, "halotest"); err == nil {
			t.Errorf("table %s halotest left after Close:\n%s", fam, out)
		}
	}
}
