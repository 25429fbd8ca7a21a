package xdp

import (
	"slices"
	"testing"
)

// slots is a table of ids with ringDirty on the positions named.
func slots(ids []uint32, dirty ...int) []uint32 {
	out := slices.Clone(ids)
	for _, i := range dirty {
		out[i] |= ringDirty
	}
	return out
}

func TestNextRing(t *testing.T) {
	all := func(uint32) bool { return true }
	cases := []struct {
		name      string
		prev, cur []uint32
		valid     func(uint32) bool
		want      []uint32
		dirty     int
	}{
		{"a new service starts clean", nil, []uint32{1, 2, 1}, all, []uint32{1, 2, 1}, 0},
		{"an unchanged table stays clean", []uint32{1, 2, 1}, []uint32{1, 2, 1}, all, []uint32{1, 2, 1}, 0},
		{"a slot whose real changes keeps the old one, dirty", []uint32{1, 2, 1}, []uint32{1, 3, 1}, all,
			slots([]uint32{1, 2, 1}, 1), 1},
		{"a dirty slot keeps its previous real through another change", slots([]uint32{1, 2, 1}, 1), []uint32{1, 4, 1}, all,
			slots([]uint32{1, 2, 1}, 1), 1},
		{"a dirty slot stays dirty when the table comes back to its previous real", slots([]uint32{1, 2, 1}, 1),
			[]uint32{1, 2, 1}, all, slots([]uint32{1, 2, 1}, 1), 1},
		{"a previous real that left is replaced by the current one", slots([]uint32{1, 2, 1}, 1), []uint32{1, 3, 3},
			func(id uint32) bool { return id != 2 }, slots([]uint32{1, 3, 1}, 1, 2), 2},
		{"a slot that had no real takes the current one, clean", []uint32{0, 0}, []uint32{5, 6}, all, []uint32{5, 6}, 0},
		{"a table of another size starts clean", []uint32{1, 2}, []uint32{3, 3, 3}, all, []uint32{3, 3, 3}, 0},
	}
	for _, c := range cases {
		got, dirty := nextRing(c.prev, c.cur, c.valid)
		if !slices.Equal(got, c.want) || dirty != c.dirty {
			t.Errorf("%s: got %x (%d dirty), want %x (%d dirty)", c.name, got, dirty, c.want, c.dirty)
		}
	}
}

// A flow that started between two changes on a slot that was clean then
// is on the slot's previous real: the chain of changes must not move the
// previous real of a dirty slot, whatever the tables in between.
func TestNextRingChainKeepsFirstPrevious(t *testing.T) {
	all := func(uint32) bool { return true }
	t0 := []uint32{1, 1, 2, 2}
	t1 := []uint32{1, 3, 2, 3} // slots 1 and 3 change
	t2 := []uint32{4, 3, 2, 2} // slot 0 changes, slot 3 returns to 2
	r1, _ := nextRing(t0, t1, all)
	r2, dirty := nextRing(r1, t2, all)
	want := slots([]uint32{1, 1, 2, 2}, 0, 1, 3)
	if !slices.Equal(r2, want) || dirty != 3 {
		t.Fatalf("after two changes: %x (%d dirty), want %x", r2, dirty, want)
	}
}

func TestSettled(t *testing.T) {
	cur := []uint32{1, 3, 2, 3}
	ring := slots([]uint32{1, 1, 2, 2}, 1, 3)
	got, dirty := settled(ring, cur, map[uint32]bool{3: true})
	if want := slots([]uint32{1, 3, 2, 2}, 3); !slices.Equal(got, want) || dirty != 1 {
		t.Fatalf("settled: %x (%d dirty), want %x", got, dirty, want)
	}
	got, dirty = settled(ring, cur, nil)
	if !slices.Equal(got, cur) || dirty != 0 {
		t.Fatalf("settled without busy slots: %x (%d dirty), want %x", got, dirty, cur)
	}
}

func TestAllDirty(t *testing.T) {
	got := allDirty([]uint32{1, 0, 7})
	if want := slots([]uint32{1, 0, 7}, 0, 1, 2); !slices.Equal(got, want) {
		t.Fatalf("allDirty: %x, want %x", got, want)
	}
}
