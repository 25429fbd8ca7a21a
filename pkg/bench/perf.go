package bench

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfCounter counts CPU cycles on every CPU while a run lasts
// (system-wide: the receiving side runs in softirq context, not in the
// generator's thread; on a shared machine this includes the neighbours'
// work, so it is an upper bound).
type perfCounter struct {
	cmd *exec.Cmd
	out string
}

func startPerf() *perfCounter {
	f, err := os.CreateTemp("", "halo-bench-perf-*")
	if err != nil {
		return nil
	}
	f.Close()
	c := exec.Command("perf", "stat", "-x,", "-e", "cycles", "-a", "-o", f.Name(), "--", "sleep", "60")
	if err := c.Start(); err != nil {
		os.Remove(f.Name())
		return nil
	}
	time.Sleep(50 * time.Millisecond)
	return &perfCounter{cmd: c, out: f.Name()}
}

// stop ends the count and returns the cycles.
func (p *perfCounter) stop() float64 {
	if p == nil {
		return 0
	}
	defer os.Remove(p.out)
	p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	b, err := os.ReadFile(p.out)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ",")
		if len(f) > 2 && strings.HasPrefix(f[2], "cycles") {
			v, _ := strconv.ParseFloat(f[0], 64)
			return v
		}
	}
	return 0
}
