package xdp

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
)

// The Go constants come from the C enum through bpf2go; this checks that
// the maps the object actually declares use them, so a size written into a
// map definition by hand cannot drift from what Go allocates ids against.
// No root needed: it reads the embedded object's specification.
func TestMapSizesMatchLimits(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{
		"vips":         MaxServices,
		"rings":        MaxServices,
		"config":       1,
		"persist":      uint32(lbLbLimitsLB_PERSIST_SIZE),
		"reals":        MaxReals,
		"conntrack":    FlowTableSize,
		"conntrack4":   FlowTableSize,
		"real_stats":   MaxReals,
		"reason_stats": 1, // one struct lb_percpu per CPU
		"tx_ports":     maxIfaces,
		"if_macs":      maxIfaces,
		"egress_ifs":   maxIfaces,
		"tx_slots":     maxIfaces,
		"nh_wanted":    uint32(lbLbLimitsLB_MAX_NH_WANTED),
		"rnat_filter":  uint32(lbLbLimitsLB_VIP_FILTER_BITS), // rnatFilterOf's length
	}
	for name, n := range want {
		m := spec.Maps[name]
		if m == nil {
			t.Errorf("map %s missing from the object", name)
			continue
		}
		if m.MaxEntries != n {
			t.Errorf("map %s: max_entries %d, Go expects %d", name, m.MaxEntries, n)
		}
	}
	sizes := map[string]struct{ key, value uint32 }{
		"vips":         {uint32(sizeOf[lbVipKey]()), uint32(sizeOf[lbVipMeta]())},
		"reals":        {4, uint32(sizeOf[lbReal]())},
		"conntrack":    {uint32(sizeOf[lbFlowKey]()), uint32(sizeOf[lbFlowVal]())},
		"reason_stats": {4, uint32(sizeOf[lbLbPercpu]())},
	}
	for name, s := range sizes {
		m := spec.Maps[name]
		if m.KeySize != s.key || m.ValueSize != s.value {
			t.Errorf("map %s: key/value %d/%d bytes, Go mirror %d/%d", name, m.KeySize, m.ValueSize, s.key, s.value)
		}
	}
	if in := spec.Maps["rings"].InnerMap; in == nil || in.MaxEntries*uint32(lbLbLimitsLB_RING_CHUNK) < RingSize ||
		in.ValueSize != uint32(sizeOf[lbRingChunk]()) || (in.MaxEntries-1)*uint32(lbLbLimitsLB_RING_CHUNK) >= RingSize {
		t.Errorf("rings' inner table: %+v, want %d slots in chunks of %d", in, RingSize, lbLbLimitsLB_RING_CHUNK)
	}
	if n := uint32(sizeOf[lbLbConfig]()); spec.Maps["config"].ValueSize != n {
		t.Errorf("config value %d bytes, Go mirror %d", spec.Maps["config"].ValueSize, n)
	}
	for r := Reason(0); r < numReasons; r++ {
		if reasonNames[r] == "" {
			t.Errorf("reason %d has no metrics name", r)
		}
	}
	for _, name := range []string{"conntrack", "conntrack4"} {
		if spec.Maps[name].Type != ebpf.LRUHash {
			t.Errorf("%s is %s, want an LRU hash", name, spec.Maps[name].Type)
		}
	}
}

func sizeOf[T any]() uintptr {
	var v T
	return unsafe.Sizeof(v)
}
