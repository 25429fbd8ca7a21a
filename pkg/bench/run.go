package bench

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Options of a run.
type Options struct {
	Runs    int    // measured runs per scenario; the report gives their median
	Packets uint32 // frames per run
	Batch   uint32 // live-frames batch size
	// Only, when set, keeps the scenarios whose name contains one of these.
	Only []string
	// Progress is told about every step (scenario index, run index).
	Progress func(done, total int, label string)
}

// Result is what one scenario measured.
type Result struct {
	Scenario Scenario
	Skipped  string    // why it did not run
	Err      error     // it broke
	Mpps     []float64 // delivered frames per second of each run, millions
	Sent     uint64    // frames generated over the measured runs
	Got      uint64    // frames counted at the sink over the measured runs
	Sample   []byte    // a delivered frame (first bytes)
	Counters map[string]uint64
	// CyclesPerPkt is from perf when the machine has cycle counters.
	CyclesPerPkt float64
	cycles       float64
}

// Median of the runs.
func (r Result) Median() float64 { return Median(r.Mpps) }

// Delivered is the fraction of generated frames counted at the sink.
func (r Result) Delivered() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Got) / float64(r.Sent)
}

func (o Options) wants(name string) bool {
	if len(o.Only) == 0 {
		return true
	}
	for _, w := range o.Only {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// Run runs the scenarios on env in rounds: every round sets up each
// scenario in turn, warms it up, measures one run and tears it down, so a
// change in the machine's load during the run falls on every scenario
// alike instead of on the ones that happened to run late. A scenario that
// is skipped or breaks in one round is not tried again.
func Run(env *Env, scs []Scenario, opts Options) []Result {
	var out []Result
	for _, s := range scs {
		if opts.wants(s.Name) {
			out = append(out, Result{Scenario: s, Skipped: s.Skip})
		}
	}
	total := len(out) * opts.Runs
	done := 0
	for round := 0; round < opts.Runs; round++ {
		for i := range out {
			r := &out[i]
			if opts.Progress != nil {
				opts.Progress(done, total, fmt.Sprintf("round %d/%d: %s", round+1, opts.Runs, r.Scenario.Name))
			}
			done++
			if r.Skipped != "" || r.Err != nil {
				continue
			}
			runRound(env, r, opts)
		}
	}
	for i := range out {
		r := &out[i]
		if r.Skipped == "" && r.Err == nil && r.Got == 0 {
			r.Err = errors.New("no frame reached the sink")
		}
		if r.Got > 0 && r.cycles > 0 {
			r.CyclesPerPkt = r.cycles / float64(r.Got)
		}
	}
	if opts.Progress != nil {
		opts.Progress(total, total, "done")
	}
	return out
}

// runRound sets the scenario up, warms it up, measures one run, checks a
// delivered frame's shape and tears it down.
func runRound(env *Env, r *Result, opts Options) {
	s := r.Scenario
	t, err := s.Setup(env)
	var sk errSkip
	if errors.As(err, &sk) {
		r.Skipped = string(sk)
		return
	}
	if err != nil {
		r.Err = fmt.Errorf("set up: %w", err)
		return
	}
	defer t.Teardown()
	spec := s.Spec
	if spec.DstMAC == nil {
		spec.DstMAC = env.L0MAC
	}
	tmpl, err := spec.Build()
	if err != nil {
		r.Err = err
		return
	}
	warm := tmpl
	if s.Warm != nil {
		w := *s.Warm
		w.DstMAC = env.L0MAC
		if warm, err = w.Build(); err != nil {
			r.Err = err
			return
		}
	}
	// The warm-up sends every flow's packets (twice over) so the measured
	// run sees the steady state: flows recorded where the program records
	// them (flow-table hits), conntrack entries, flow_seen's bits.
	n := uint32(2 * max(s.Flows, 1))
	if s.Flows == NewFlows {
		n = 65536
	}
	if err := env.generate(warm, s.Flows, n, opts.Batch); err != nil {
		r.Err = fmt.Errorf("warm-up: %w", err)
		return
	}
	settle(t.Count)
	if t.AfterWarm != nil {
		if err := t.AfterWarm(); err != nil {
			r.Err = fmt.Errorf("after the warm-up: %w", err)
			return
		}
	}
	if t.Sample != nil {
		env.BackProgs.ResetSample()
		env.SinkProgs.ResetSample()
	}
	var base map[string]uint64
	if t.Counters != nil {
		base = t.Counters()
	}
	before, err := t.Count()
	if err != nil {
		r.Err = err
		return
	}
	var pc *perfCounter
	if perfSupported() {
		pc = startPerf()
	}
	start := time.Now()
	err = env.generate(tmpl, s.Flows, opts.Packets, opts.Batch)
	el := time.Since(start)
	r.cycles += pc.stop()
	if err != nil {
		r.Err = err
		return
	}
	got := settle(t.Count) - before
	r.Sent += uint64(opts.Packets)
	r.Got += got
	r.Mpps = append(r.Mpps, float64(got)/el.Seconds()/1e6)
	if t.Counters != nil {
		if r.Counters == nil {
			r.Counters = map[string]uint64{}
		}
		for k, v := range t.Counters() {
			if d := v - base[k]; d != 0 {
				r.Counters[k] += d
			}
		}
	}
	if got == 0 {
		r.Err = errors.New("no frame reached the sink")
		return
	}
	if t.Counters != nil {
		if err := s.checkPath(r.Counters); err != nil {
			r.Err = err
			return
		}
	}
	if t.Sample != nil {
		smp, err := t.Sample()
		if err != nil {
			r.Err = err
			return
		}
		if smp == nil {
			r.Err = errors.New("frames were counted but none was sampled")
			return
		}
		r.Sample = smp
		if err := t.Check(smp); err != nil {
			r.Err = fmt.Errorf("delivered frame has the wrong shape: %w (% x)", err, smp)
		}
	}
}

// settle waits until the counter stops moving (the receiving NAPI may run
// a moment after the generator returns), at most half a second.
func settle(count func() (uint64, error)) uint64 {
	last, _ := count()
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		v, _ := count()
		if v == last {
			return v
		}
		last = v
	}
	return last
}

// generate configures the generator and sends n frames from inside the
// generator's namespace (the ifindex is looked up there).
func (e *Env) generate(t Template, flows int, n, batch uint32) error {
	if err := e.GenProgs.Configure(t, flows); err != nil {
		return err
	}
	return e.Gen.Do(func() error { return e.GenProgs.Generate(t.Frame, e.GenIfindex, n, batch) })
}

var perfState = struct {
	checked, ok bool
	why         string
}{}

// PerfStatus says whether CPU cycle counters are usable, and if not why.
func PerfStatus() (bool, string) {
	perfSupported()
	return perfState.ok, perfState.why
}

func perfSupported() bool {
	if perfState.checked {
		return perfState.ok
	}
	perfState.checked = true
	if _, err := exec.LookPath("perf"); err != nil {
		perfState.why = "perf is not installed"
		return false
	}
	out, err := exec.Command("perf", "stat", "-x,", "-e", "cycles", "-a", "true").CombinedOutput()
	if err != nil || strings.Contains(string(out), "not supported") || strings.Contains(string(out), "not counted") {
		perfState.why = "`perf stat -e cycles` says: " + firstLine(string(out))
		return false
	}
	perfState.ok = true
	return true
}

func firstLine(s string) string {
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return s
}
