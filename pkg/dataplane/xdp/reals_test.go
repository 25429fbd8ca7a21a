package xdp

import "testing"

// Ids come from the free list first, then from never-used ones; 0 is never
// handed out for reals; a rebuilt pool (adoption) hands out exactly the
// ids that were not in use.
func TestIDPool(t *testing.T) {
	p := newIDPool(1, 5)
	var got []uint32
	for {
		id, ok := p.get()
		if !ok {
			break
		}
		got = append(got, id)
	}
	if len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("ids %v, want 1..4", got)
	}
	p.put(3)
	p.put(2)
	if id, _ := p.get(); id != 2 {
		t.Fatalf("reuse gave %d, want the last freed (2)", id)
	}
	r := rebuildPool(map[uint32]bool{1: true, 4: true}, 1, 8)
	seen := map[uint32]bool{}
	for {
		id, ok := r.get()
		if !ok {
			break
		}
		if id == 1 || id == 4 || id == 0 || seen[id] {
			t.Fatalf("rebuilt pool handed out %d", id)
		}
		seen[id] = true
	}
	if len(seen) != 5 {
		t.Fatalf("rebuilt pool gave %v, want 2,3,5,6,7", seen)
	}
}
