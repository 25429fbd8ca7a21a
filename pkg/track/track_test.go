package track

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEffective(t *testing.T) {
	cases := []struct {
		name  string
		base  int
		items []Item
		prio  int
		fault string
	}{
		{"nothing tracked", 100, nil, 100, ""},
		{"negative weight while failed", 100, []Item{{Name: "chk", Weight: -5, OK: false}}, 95, ""},
		{"negative weight while ok", 100, []Item{{Name: "chk", Weight: -5, OK: true}}, 100, ""},
		{"positive weight while ok", 100, []Item{{Name: "chk", Weight: 20, OK: true}}, 120, ""},
		{"positive weight while failed", 100, []Item{{Name: "chk", Weight: 20, OK: false}}, 100, ""},
		{"weight 0 failure is FAULT", 100, []Item{{Name: "eth1", Weight: 0, OK: false}}, 100, "eth1"},
		{"weight 0 reverse: FAULT while up", 100, []Item{{Name: "x", Weight: 0, OK: true, Reverse: true}}, 100, "x"},
		// keepalived 2.2.7, measured: reverse keeps when a weight applies
		// and turns its direction (120 with `weight 60 reverse` → 60 while
		// passing; 90 with `weight -60 reverse` → 150 while failing).
		{"reverse positive weight subtracts while up", 120, []Item{{Name: "x", Weight: 60, OK: true, Reverse: true}}, 60, ""},
		{"reverse positive weight does nothing while down", 120, []Item{{Name: "x", Weight: 60, OK: false, Reverse: true}}, 120, ""},
		{"reverse negative weight adds while down", 90, []Item{{Name: "x", Weight: -60, OK: false, Reverse: true}}, 150, ""},
		{"reverse negative weight does nothing while up", 90, []Item{{Name: "x", Weight: -60, OK: true, Reverse: true}}, 90, ""},
		{"clamped high", 250, []Item{{Name: "a", Weight: 50, OK: true}}, 254, ""},
		{"clamped low", 10, []Item{{Name: "a", Weight: -50, OK: false}}, 1, ""},
		{"owner never moves", 255, []Item{{Name: "a", Weight: -50, OK: false}}, 255, ""},
		{"owner still faults", 255, []Item{{Name: "a", Weight: 0, OK: false}}, 255, "a"},
		{"file value times weight", 100, []Item{{Name: "f", File: true, Weight: -10, Value: 3}}, 70, ""},
		{"file weight 0 non-zero is FAULT", 100, []Item{{Name: "f", File: true, Value: 1}}, 100, "f"},
		{"file below -253 is FAULT", 100, []Item{{Name: "f", File: true, Weight: 1, Value: -254}}, 100, "f"},
		{"several", 100, []Item{{Name: "a", Weight: -5}, {Name: "b", Weight: 10, OK: true}, {Name: "c", Weight: -20, OK: true}}, 105, ""},
	}
	for _, c := range cases {
		p, f := Effective(c.base, c.items)
		if p != c.prio || f != c.fault {
			t.Errorf("%s: got %d %q, want %d %q", c.name, p, f, c.prio, c.fault)
		}
	}
}

func TestHysteresis(t *testing.T) {
	h := NewHysteresis(3, 2, false)
	seq := []struct {
		in      bool
		changed bool
		ok      bool
	}{
		{false, false, true}, {true, false, true}, // a failure run broken by a success
		{false, false, true}, {false, true, false}, // fall 2
		{true, false, false}, {true, false, false}, {true, true, true}, // rise 3
	}
	for i, s := range seq {
		if ch := h.Add(s.in); ch != s.changed || h.OK() != s.ok {
			t.Fatalf("step %d: changed %v ok %v", i, ch, h.OK())
		}
	}
	if NewHysteresis(1, 1, true).OK() {
		t.Fatal("init_fail starts OK")
	}
}

// keepalived 2.2.7 (docs/keepalived.md#init_fail-measured): an init_fail
// script with rise 3 is OK after its first passing run; one whose first run
// fails needs rise passing runs like any failed script.
func TestHysteresisInitFail(t *testing.T) {
	h := NewHysteresis(3, 2, true)
	if h.OK() {
		t.Fatal("init_fail starts OK")
	}
	if !h.Add(true) || !h.OK() {
		t.Fatal("init_fail with rise 3: the first passing run must bring it up")
	}
	h = NewHysteresis(3, 2, true)
	steps := []struct{ in, changed, ok bool }{
		{false, false, false},                                          // an actual failure
		{true, false, false}, {true, false, false}, {true, true, true}, // rise 3
	}
	for i, s := range steps {
		if ch := h.Add(s.in); ch != s.changed || h.OK() != s.ok {
			t.Fatalf("step %d: changed %v ok %v, want %v %v", i, ch, h.OK(), s.changed, s.ok)
		}
	}
}

// Track files must be regular files; a FIFO in their place neither blocks
// nor counts, and only the first MaxTrackFile bytes are read.
func TestReadTrackFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte(" -7\nignored\n"), 0o644)
	if n, err := ReadTrackFile(p, time.Second); err != nil || n != -7 {
		t.Fatalf("%d %v", n, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		start := time.Now()
		if _, err := ReadTrackFile(fifo, time.Second); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("fifo: %v", err)
		}
		if time.Since(start) > 500*time.Millisecond {
			t.Fatal("fifo blocked")
		}
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat("1", 2*MaxTrackFile)), 0o644)
	if _, err := ReadTrackFile(big, time.Second); err == nil {
		t.Fatal("a number longer than the bound was read whole")
	}
	if _, err := ReadTrackFile("/dev/zero", time.Second); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("/dev/zero: %v", err)
	}
}

// A script tracker that has not reported moves nothing, whatever its
// weight.
func TestUnknownScriptMovesNothing(t *testing.T) {
	for _, w := range []int{60, -60, 0} {
		for _, ok := range []bool{true, false} {
			if p, f := Effective(100, []Item{{Name: "chk", Weight: w, OK: ok, Unknown: true}}); p != 100 || f != "" {
				t.Errorf("weight %d ok %v: %d %q", w, ok, p, f)
			}
		}
	}
}

// Only a weight-0 script without a result holds an instance.
func TestPending(t *testing.T) {
	for _, c := range []struct {
		it   Item
		want string
	}{
		{Item{Name: "a", Unknown: true}, "a"},
		{Item{Name: "a", Unknown: true, Reverse: true}, "a"},
		{Item{Name: "a", Unknown: false}, ""},
		{Item{Name: "a", Unknown: true, Weight: -60}, ""},
		{Item{Name: "a", Unknown: true, Weight: 10}, ""},
	} {
		if got := Pending([]Item{{Name: "if", OK: true}, c.it}); got != c.want {
			t.Errorf("%+v: pending %q, want %q", c.it, got, c.want)
		}
	}
}
