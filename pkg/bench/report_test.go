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
		"| halo-tun-32k | TUN (IPIP), 32k flows | skipped: backend refused TUN |",
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
