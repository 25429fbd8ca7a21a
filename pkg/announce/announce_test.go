package announce

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// The GARP keepalived 2.2.7 sends, captured
// (docs/vrrp-wire.md#garp-and-unsolicited-na):
// a request, target hardware address all ones, sender and target the VIP.
func TestGARPFrameMatchesKeepalived(t *testing.T) {
	want, _ := hex.DecodeString(strings.ReplaceAll("ffffffffffff 3291ba975e72 0806 0001 0800 06 04 0001 3291ba975e72 0a6300c8 ffffffffffff 0a6300c8", " ", ""))
	mac, _ := net.ParseMAC("32:91:ba:97:5e:72")
	got, err := GARPFrame(mac, netip.MustParseAddr("10.99.0.200"))
	if err != nil {
		t.Fatal(err)
	}
	// The marshalled frame is padded to the Ethernet minimum; compare the
	// ARP part and check the padding is zeros.
	if !bytes.Equal(got[:len(want)], want) || len(bytes.Trim(got[len(want):], "\x00")) != 0 {
		t.Fatalf("GARP\n got %x\nwant %x", got, want)
	}
}

// RFC 4861 §4.4 unsolicited NA: type 136, Override (and Router when
// forwarding), target, target link-layer address option.
func TestNAMessage(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	m := NAMessage(netip.MustParseAddr("fd00:99::100"), mac, false)
	want, _ := hex.DecodeString("88000000" + "20000000" + "fd000099000000000000000000000100" + "0201" + "020000000001")
	if !bytes.Equal(m, want) {
		t.Fatalf("NA\n got %x\nwant %x", m, want)
	}
	if r := NAMessage(netip.MustParseAddr("fd00:99::100"), mac, true); r[4] != 0xa0 {
		t.Fatalf("router flag: %x", r[4])
	}
}
