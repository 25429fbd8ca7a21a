package vipfw

import (
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// keepalived 2.2.7's ruleset with two use_vmac instances (VRID 97 IPv4,
// VRID 98 IPv6) on eth0 and no vrrp_strict, as `nft list ruleset` printed it.
const keepalivedVMACRuleset = `table ip keepalived {
	map vmac_map {
		type iface_index : iface_index
		elements = { "vrrp.97" : "eth0" }
	}

	chain out {
		type filter hook output priority filter - 1; policy accept;
		ip protocol igmp meta oifkind "macvlan" dup to ip daddr device oif map @vmac_map drop
	}
}
table ip6 keepalived {
	map vmac_map {
		type iface_index : iface_index
		elements = { "vrrp.98" : "eth0" }
	}

	set vmac_set {
		type iface_index
		elements = { "vrrp.98" }
	}

	chain out {
		type filter hook output priority filter - 1; policy accept;
		icmpv6 type mld2-listener-report meta oifkind "macvlan" dup to ip6 daddr device oif map @vmac_map drop
		icmpv6 type nd-router-solicit meta oifkind "macvlan" oif @vmac_set drop
	}
}
`

// The kernel holds the VMAC objects exactly as keepalived's; the element
// goes with its VMAC, the tables with Close.
func TestVMACInKernel(t *testing.T) {
	conn, ns := inNewNetns(t)
	for _, c := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", "eth1"},
		{"link", "add", "link", "eth0", "name", "vrrp.97", "type", "macvlan", "mode", "private"},
		{"link", "add", "link", "eth0", "name", "vrrp.98", "type", "macvlan", "mode", "private"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, c...)...).CombinedOutput(); err != nil {
			t.Skipf("ip %v: %v: %s (no macvlan?)", c, err, out)
		}
	}
	idx := func(name string) uint32 {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(out), ":")
		var n uint32
		for _, c := range string(out)[:i] {
			n = n*10 + uint32(c-'0')
		}
		return n
	}
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	fw, err := Open(Config{Priority: DefaultPriority}, conn, slog.New(slog.NewTextHandler(io.Discard, nil)), NetNS(int(nsh)))
	if err != nil {
		t.Fatal(err)
	}
	base := idx("eth0")
	if err := fw.SetVMAC("V4", []VMACLink{{Family: IPv4, Ifindex: idx("vrrp.97"), Base: base}}); err != nil {
		t.Fatal(err)
	}
	if err := fw.SetVMAC("V6", []VMACLink{{Family: IPv6, Ifindex: idx("vrrp.98"), Base: base}}); err != nil {
		t.Fatal(err)
	}
	got, err := nftList(t, ns, "list", "ruleset")
	if err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if got != keepalivedVMACRuleset {
		t.Errorf("ruleset differs from keepalived's:\n got:\n%s\nwant:\n%s", got, keepalivedVMACRuleset)
	}
	if err := fw.SetVMAC("V6", nil); err != nil {
		t.Fatal(err)
	}
	if out, _ := nftList(t, ns, "list", "table", "ip6", "keepalived"); strings.Contains(out, "vrrp.98") {
		t.Errorf("element left after the VMAC went:\n%s", out)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := nftList(t, ns, "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset left after Close:\n%s", out)
	}
}
