package packet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The VRRPv2 frame captured from keepalived 2.2.7
// (docs/vrrp-wire.md#captured-vectors) exercises the IPv4 header builder byte for byte, checksum included.
func TestIPv4HeaderMatchesCapturedKeepalivedFrame(t *testing.T) {
	want := unhex(t, `01005e000012 3291ba975e72 0800 45c0002c 00010000 ff70d029 0a630002 e0000012
		21336402 0101f6bb 0a630064 0a630065 7365637265743132`)
	f := Frame{
		Dst: MustMAC("01:00:5e:00:00:12"), Src: MustMAC("32:91:ba:97:5e:72"),
		IPv4: &IPv4{TOS: 0xc0, ID: 1, TTL: 255, Protocol: ProtoVRRP,
			Src: netip.MustParseAddr("10.99.0.2"), Dst: netip.MustParseAddr("224.0.0.18")},
		Payload: unhex(t, "21336402 0101f6bb 0a630064 0a630065 7365637265743132"),
	}
	got := f.Bytes()
	if !bytes.Equal(got, want) {
		t.Fatalf("frame mismatch\n got %x\nwant %x", got, want)
	}
	p, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if !p.L3CsumOK || p.IPv4.Protocol != ProtoVRRP || p.IPv4.TTL != 255 {
		t.Fatalf("parse: %+v", p.IPv4)
	}
}

func TestRoundTrip(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6s, v6d := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	mac1, mac2 := MustMAC("02:00:00:00:00:01"), MustMAC("02:00:00:00:00:02")
	cases := []struct {
		name  string
		frame Frame
	}{
		{"tcp4", Frame{Dst: mac1, Src: mac2, IPv4: &IPv4{Src: v4s, Dst: v4d},
			TCP: &TCP{SrcPort: 1000, DstPort: 80, Seq: 7, Flags: TCPSyn}, Payload: []byte("hello")}},
		{"udp4 odd payload", Frame{Dst: mac1, Src: mac2, IPv4: &IPv4{Src: v4s, Dst: v4d},
			UDP: &UDP{SrcPort: 1000, DstPort: 53}, Payload: []byte("abc")}},
		{"icmp4 with options", Frame{Dst: mac1, Src: mac2, IPv4: &IPv4{Src: v4s, Dst: v4d, Options: []byte{1, 1, 1, 0}},
			ICMP: &ICMP{Type: 8, Rest: 0x00010002}, Payload: []byte("ping")}},
		{"tcp6", Frame{Dst: mac1, Src: mac2, IPv6: &IPv6{Src: v6s, Dst: v6d},
			TCP: &TCP{SrcPort: 1000, DstPort: 443, Flags: TCPAck}, Payload: []byte("x")}},
		{"udp6 vlan", Frame{Dst: mac1, Src: mac2, VLAN: 42, IPv6: &IPv6{Src: v6s, Dst: v6d},
			UDP: &UDP{SrcPort: 5, DstPort: 6}}},
		{"icmp6", Frame{Dst: mac1, Src: mac2, IPv6: &IPv6{Src: v6s, Dst: v6d},
			ICMP: &ICMP{Type: 128, Rest: 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.frame.Bytes()
			p, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !p.L3CsumOK || !p.L4CsumOK {
				t.Fatalf("checksums: l3 %v l4 %v", p.L3CsumOK, p.L4CsumOK)
			}
			if p.VLAN != c.frame.VLAN {
				t.Fatalf("vlan %d", p.VLAN)
			}
			if !bytes.Equal(p.Payload, c.frame.Payload) && !(len(p.Payload) == 0 && len(c.frame.Payload) == 0) {
				t.Fatalf("payload %q", p.Payload)
			}
			if (p.TCP == nil) != (c.frame.TCP == nil) || (p.UDP == nil) != (c.frame.UDP == nil) || (p.ICMP == nil) != (c.frame.ICMP == nil) {
				t.Fatal("wrong L4 layer")
			}
		})
	}
}

func TestBadChecksumsAreDetected(t *testing.T) {
	f := Frame{IPv4: &IPv4{Src: netip.MustParseAddr("1.1.1.1"), Dst: netip.MustParseAddr("2.2.2.2"), Checksum: 1, KeepCsum: true},
		TCP: &TCP{SrcPort: 1, DstPort: 2, Checksum: 2, KeepCsum: true}}
	p, err := Parse(f.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if p.L3CsumOK || p.L4CsumOK {
		t.Fatal("bad checksums not detected")
	}
}

func TestTruncated(t *testing.T) {
	full := (&Frame{IPv4: &IPv4{Src: netip.MustParseAddr("1.1.1.1"), Dst: netip.MustParseAddr("2.2.2.2")},
		TCP: &TCP{SrcPort: 1, DstPort: 2}}).Bytes()
	for n := 0; n < len(full); n++ {
		if _, err := Parse(full[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("len %d: err %v", n, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add((&Frame{IPv6: &IPv6{Src: netip.MustParseAddr("::1"), Dst: netip.MustParseAddr("::2")}, UDP: &UDP{}}).Bytes())
	f.Add((&Frame{VLAN: 3, IPv4: &IPv4{Src: netip.MustParseAddr("1.1.1.1"), Dst: netip.MustParseAddr("2.2.2.2")}, TCP: &TCP{}}).Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Parse(b)
	})
}

// A QinQ frame (802.1ad outer tag, 802.1Q inner) builds with both tags in
// order and parses back to both ids and the inner layers.
func TestQinQRoundTrip(t *testing.T) {
	f := &Frame{Dst: MustMAC("02:00:00:00:00:02"), Src: MustMAC("02:00:00:00:00:01"), OuterVLAN: 100, VLAN: 42,
		IPv4: &IPv4{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2")},
		UDP:  &UDP{SrcPort: 1, DstPort: 2}, Payload: []byte("x")}
	b := f.Bytes()
	if got := b[12:20]; !bytes.Equal(got, []byte{0x88, 0xa8, 0, 100, 0x81, 0, 0, 42}) {
		t.Fatalf("tags % x", got)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.OuterVLAN != 100 || p.VLAN != 42 || p.UDP == nil || !p.L4CsumOK || string(p.Payload) != "x" {
		t.Fatalf("parsed %+v", p)
	}
}
