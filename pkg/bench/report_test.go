package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The report from made-up results: ratios are paired per round and
// rounded down, skipped and broken rows say why, goals not met say so.
func TestReport(t *testing.T) {
	sc := map[string]Scenario{}
	for _, s := range Scenarios() {
		sc[s.Name] = s
	}
	res := []Result{
		{Scenario: sc["xdp-drop"], Mpps: []float64{4, 2, 4}, Sent: 3, Got: 3},
		{Scenario: sc["macswap-tx"], Mpps: []float64{2, 1, 2}, Sent: 3, Got: 3},
		// 0.949… of the MAC swap in every round: must read 0.94, not 0.95.
		{Scenario: sc["halo-dr-32k"], Mpps: []float64{1.899, 0.9495, 1.899}, Sent: 3, Got: 3},
		{Scenario: sc["halo-tun-32k"], Skipped: "backend refused TUN"},
		{Scenario: sc["nft-numgen-32k"], Err: errors.New("no frame reached the sink")},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "benchmarks.md")
	if err := WriteReport(path, res, nil, Options{Runs: 3, Packets: 10, Batch: 64}, "make bench", 0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| halo DR, 32k flows ÷ MAC-swap XDP_TX | 0.94 | ≥ 0.95 | **not met** |",
		"| halo-tun-32k | TUN (IPIP), 32k flows; table slot, no flow-table lookup | skipped: backend refused TUN |",
		"BROKEN: no frame reached the sink",
		"Command: `make bench`",
		"## Method",
		"Kernel: Linux ",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n%s", want, md)
		}
	}
	if strings.Contains(md, "0.95 | ≥ 0.95") {
		t.Error("a ratio was rounded up to its goal")
	}
	if _, err := os.Stat(filepath.Join(dir, "benchmarks-pps.png")); err != nil {
		t.Errorf("no chart: %v", err)
	}
	if got := PairedRatio([]float64{2, 1}, []float64{1, 1}); got != 1.5 {
		t.Errorf("paired ratio %v", got)
	}
}

// The halo rows' paths and the prog.Run goals: the established flow as
// halod runs it (table slot) is the goal's row, the flow-table hit stands
// beside it with its own verdict, cost ratios are rounded up, and the
// share of packets through the flow table comes from the counters.
func TestReportTracking(t *testing.T) {
	sc := map[string]Scenario{}
	for _, s := range Scenarios() {
		sc[s.Name] = s
	}
	res := []Result{
		{Scenario: sc["macswap-tx"], Mpps: []float64{2, 2, 2}, Sent: 3, Got: 3},
		{Scenario: sc["halo-dr-32k"], Mpps: []float64{1, 1, 1}, Sent: 3, Got: 3, Counters: map[string]uint64{"ring": 300, "tx": 300}},
		// 0.801 of halo-dr-32k: the column rounds up to 0.81.
		{Scenario: sc["halo-dr-32k-tracked"], Mpps: []float64{0.801, 0.801, 0.801}, Sent: 3, Got: 3, Counters: map[string]uint64{"ct_hit": 300, "tx": 300}},
		{Scenario: sc["halo-dr-32k-changed"], Mpps: []float64{0.9, 0.9, 0.9}, Sent: 3, Got: 3,
			Counters: map[string]uint64{"ring": 200, "ct_prev": 30, "ct_hit": 70, "tx": 300}},
	}
	mic := &Micro{Repeat: 10, Paths: []PathCost{
		{Name: pathSwap, NsPkt: []float64{100, 100, 100}},
		// 1.501 × the baseline: must read 1.51 and not met.
		{Name: pathSteadyUDP4, NsPkt: []float64{150.1, 150.1, 150.1}},
		{Name: pathTrackedUDP4, NsPkt: []float64{120, 140, 130}},
	}, SyncSkip: "test", ChecksSkip: "test"}
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := WriteReport(path, res, mic, Options{Runs: 3, Packets: 10, Batch: 64}, "make bench", 0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| prog.Run: established flow as halod runs it (table slot, no flow-table lookup) ÷ baseline program | 1.51 | ≤ 1.5 | **not met** | 150.1 ns per UDP/IPv4 packet against 100.0 ns",
		"| prog.Run: flow-table hit, FlowTracking always ÷ baseline program | 1.30 | ≤ 1.5 | **met** |",
		"| prog.Run: flow-table hit on a slot a change made dirty (default tracking) ÷ baseline program | – | ≤ 1.5 | not measured |",
		"| halo-dr-32k | 1.000 | 0.50 | 1.00 | 0 of 300 VIP packets (0.0 %) |",
		"| halo-dr-32k-tracked | 0.801 | 0.40 | 0.81 | 300 of 300 VIP packets (100.0 %) |",
		"| halo-dr-32k-changed | 0.900 | 0.45 | 0.90 | 100 of 300 VIP packets (33.3 %) |",
		"- halo-dr-32k-changed: ct_hit 70, ct_prev 30, ring 200, tx 300 (through the flow table: 100 of 300 VIP packets)",
		"| " + pathSteadyUDP4 + " | 150.1 | 150–150 | 1.51 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q\n%s", want, md)
		}
	}
}

// A halo row fails when its packets did not go the way it claims.
func TestCheckPath(t *testing.T) {
	for _, c := range []struct {
		path string
		c    map[string]uint64
		ok   bool
	}{
		{pathRing, map[string]uint64{"ring": 5, "tx": 5}, true},
		{pathRing, map[string]uint64{"ring": 5, "ct_hit": 1}, false},
		{pathRing, map[string]uint64{"tx": 5}, false},
		{pathTable, map[string]uint64{"ct_hit": 4, "ct_new": 1}, true},
		{pathTable, map[string]uint64{"ct_hit": 4, "ring": 1}, false},
		{pathMixed, map[string]uint64{"ct_prev": 4, "ring": 1}, true},
		{pathMixed, map[string]uint64{"ring": 1}, false},
		{pathReply, map[string]uint64{"nat_reply": 3, "tx": 3}, true},
		{pathReply, map[string]uint64{"nat_reply": 3, "ct_hit": 3}, false},
		{"", nil, true},
	} {
		err := Scenario{Path: c.path}.checkPath(c.c)
		if (err == nil) != c.ok {
			t.Errorf("%s %v: %v", c.path, c.c, err)
		}
	}
}
