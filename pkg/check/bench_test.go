package check

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperListener is not a test: BenchmarkTCPChecks runs the test binary
// again with HALO_HELPER_LISTEN set, so the listeners' accept work happens in
// another process and getrusage measures only the checkers.
func TestHelperListener(t *testing.T) {
	if os.Getenv("HALO_HELPER_LISTEN") == "" {
		t.Skip("helper process for BenchmarkTCPChecks")
	}
	for i := 0; i < 16; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(l.Addr().String())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark closes stdin
}

// cpuTime returns user and system CPU time of this process.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkTCPChecks runs 10,000 TCP_CHECKs at delay_loop 1 s against
// local listeners (in a helper process) and reports the CPU they cost, in
// cores, and the heap they hold. Goal: under half a core.
func BenchmarkTCPChecks(b *testing.B) {
	const n = 10000
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperListener$")
	cmd.Env = append(os.Environ(), "HALO_HELPER_LISTEN=1")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	var addrs []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		if strings.Contains(sc.Text(), ":") {
			addrs = append(addrs, sc.Text())
		}
	}
	if len(addrs) == 0 {
		b.Fatal("helper gave no listeners")
	}
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithCancel(context.Background())
		s := NewScheduler(0)
		jobs := make([]*Job, n)
		for j := range jobs {
			ap := netip.MustParseAddrPort(addrs[j%len(addrs)])
			jobs[j] = &Job{Checker: &TCP{T: Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: 2 * time.Second}},
				Probe: NewProbe(1, time.Second, time.Second, false, time.Now()), Timeout: 2 * time.Second}
			s.Start(ctx, jobs[j], time.Second)
		}
		time.Sleep(2 * time.Second) // past the warmup spread
		var att0 uint64
		for _, j := range jobs {
			att0 += j.Status().Attempts
		}
		u0, s0 := cpuTime()
		w0 := time.Now()
		time.Sleep(5 * time.Second)
		u1, s1 := cpuTime()
		wall := float64(time.Since(w0))
		// System time includes the loopback handshake work of the listener
		// side, which the kernel charges to the connecting process.
		userCores, sysCores := float64(u1-u0)/wall, float64(s1-s0)/wall
		cores := userCores + sysCores
		var att1, down uint64
		for _, j := range jobs {
			st := j.Status()
			att1 += st.Attempts
			if !st.Up {
				down++
			}
		}
		rate := float64(att1-att0) / time.Since(w0).Seconds()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		cancel()
		s.Wait()
		heapMB := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		b.ReportMetric(cores, "cores")
		b.ReportMetric(userCores, "user-cores")
		b.ReportMetric(rate, "checks/s")
		b.ReportMetric(heapMB, "heap-MB")
		fmt.Fprintf(os.Stderr, "\n10,000 TCP checks, delay_loop 1 s: %.3f cores (user %.3f, system %.3f), %.0f checks/s, %.1f MB heap, %d down\n",
			cores, userCores, sysCores, rate, heapMB, down)
		if down > 0 {
			b.Errorf("%d checks reported down against live listeners", down)
		}
	}
}
