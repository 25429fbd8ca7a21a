package maglev

import (
	"fmt"
	"math"
	"testing"
)

func backends(n int, weight func(i int) uint32) []Backend {
	var bs []Backend
	for i := 0; i < n; i++ {
		bs = append(bs, Backend{ID: uint32(i + 1), Key: fmt.Sprintf("10.0.%d.%d:80", i/250, i%250+1), Weight: weight(i)})
	}
	return bs
}

func counts(t []uint32) map[uint32]int {
	c := map[uint32]int{}
	for _, id := range t {
		c[id]++
	}
	return c
}

// Shares match weights within 1% on a large table.
func TestBalanceFollowsWeights(t *testing.T) {
	bs := backends(10, func(i int) uint32 { return uint32(i%4 + 1) })
	tab, err := Table(bs, SizeLarge)
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, b := range bs {
		total += float64(b.Weight)
	}
	c := counts(tab)
	for _, b := range bs {
		want := float64(b.Weight) / total
		got := float64(c[b.ID]) / float64(len(tab))
		if math.Abs(got-want) > 0.01*want {
			t.Errorf("backend %d weight %d: share %.5f, want %.5f", b.ID, b.Weight, got, want)
		}
	}
}

// Removing one of N equal backends moves about 1/N of the slots (the ones it
// held) and few others.
func TestMinimalDisruption(t *testing.T) {
	for _, n := range []int{5, 10, 50} {
		bs := backends(n, func(int) uint32 { return 1 })
		before, _ := Table(bs, SizeLarge)
		after, _ := Table(bs[1:], SizeLarge)
		moved := 0
		for i := range before {
			if before[i] != after[i] {
				moved++
			}
		}
		frac := float64(moved) / float64(len(before))
		theory := 1 / float64(n)
		t.Logf("N=%d: %.4f of slots moved, theoretical minimum %.4f", n, frac, theory)
		if frac < theory*0.99 || frac > theory*1.6 {
			t.Errorf("N=%d: moved %.4f, want close to %.4f", n, frac, theory)
		}
		// Slots of the surviving backends mostly stay.
		kept := 0
		for i := range before {
			if before[i] != bs[0].ID && before[i] == after[i] {
				kept++
			}
		}
		if float64(kept)/float64(len(before)) < (1-theory)*0.85 {
			t.Errorf("N=%d: only %d slots of surviving backends kept", n, kept)
		}
	}
}

func TestDeterministicAndOrderFree(t *testing.T) {
	bs := backends(7, func(i int) uint32 { return uint32(i + 1) })
	a, _ := Table(bs, SizeSmall)
	rev := append([]Backend(nil), bs...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b, _ := Table(rev, SizeSmall)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("table depends on the order backends are given in")
		}
	}
}

func TestWeightZeroAndEmpty(t *testing.T) {
	bs := backends(3, func(i int) uint32 { return uint32(i) }) // first has weight 0
	tab, _ := Table(bs, SizeSmall)
	if counts(tab)[bs[0].ID] != 0 {
		t.Fatal("weight-0 backend in the table")
	}
	if _, err := Table(backends(2, func(int) uint32 { return 0 }), SizeSmall); err != ErrEmpty {
		t.Fatalf("err %v", err)
	}
}

func FuzzTable(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(97))
	f.Add([]byte{0, 0, 255, 7}, uint16(2))
	f.Fuzz(func(t *testing.T, weights []byte, size uint16) {
		if len(weights) > 64 || size < 2 {
			return
		}
		m := uint32(size)
		var bs []Backend
		var active int
		for i, w := range weights {
			bs = append(bs, Backend{ID: uint32(i + 1), Key: fmt.Sprint(i), Weight: uint32(w)})
			if w > 0 {
				active++
			}
		}
		tab, err := Table(bs, m)
		if active == 0 || active > int(m) || !isPrime(m) {
			if err == nil {
				t.Fatal("no error for an impossible table")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(tab) != int(m) {
			t.Fatalf("len %d", len(tab))
		}
		c := counts(tab)
		for _, b := range bs {
			if b.Weight == 0 && c[b.ID] != 0 {
				t.Fatal("weight-0 backend present")
			}
			if b.Weight > 0 && c[b.ID] == 0 {
				t.Fatal("weighted backend absent")
			}
		}
		for id := range c {
			if id == 0 || id > uint32(len(bs)) {
				t.Fatalf("unknown id %d", id)
			}
		}
	})
}

// Every window of a round-robin table is spread by weight.
func TestRoundRobinIsSmooth(t *testing.T) {
	bs := []Backend{{ID: 1, Key: "a", Weight: 2}, {ID: 2, Key: "b", Weight: 1}}
	tab, err := RoundRobin(bs, SizeBPF)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tab[:9]) != "[1 2 1 1 2 1 1 2 1]" {
		t.Fatalf("sequence %v", tab[:9])
	}
	for start := 0; start+30 <= len(tab); start += 997 {
		c := counts(tab[start : start+30])
		if c[1] < 19 || c[1] > 21 {
			t.Fatalf("window at %d: %v", start, c)
		}
	}
	if _, err := RoundRobin(nil, SizeBPF); err != ErrEmpty {
		t.Fatal(err)
	}
}
