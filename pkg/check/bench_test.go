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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHelperListener is not a test: BenchmarkTCPChecks runs the test binary
// again with HALO_HELPER_LISTEN set, so the listeners' accept work happens in
// another process and getrusage measures only the checkers. The variable is
// 1 for loopback (the helper lives until the benchmark closes its stdin) or
// the address to listen on (it lives until killed).
func TestHelperListener(t *testing.T) {
	addr := os.Getenv("HALO_HELPER_LISTEN")
	if addr == "" {
		t.Skip("helper process for BenchmarkTCPChecks")
	}
	host := addr
	if addr == "1" {
		host = "127.0.0.1"
	}
	fmt.Println("pid", os.Getpid())
	for i := 0; i < 16; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
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
	if addr == "1" {
		bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark closes stdin
		return
	}
	time.Sleep(10 * time.Minute)
}

// cpuTime returns user and system CPU time of this process.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// BenchmarkTCPChecks runs 10,000 TCP_CHECKs at delay_loop 1 s against
// local listeners (in a helper process) and reports the CPU they cost, in
// cores, and the heap they hold. Goal: under half a core. Beside it, in
// the same run: that cost scaled to exactly 10,000 checks/s (a busy
// machine makes checks fall behind), the cost of the bare system calls of
// a check (the floor; the ratio to it holds from day to day when absolute
// figures do not) and of those with a new socket per check, and the
// listener process's own CPU.
//
// On loopback a connect() runs the whole handshake, the listener's half
// included (SYN and ACK processing, child socket creation, the wakeup of
// the listener), and the kernel charges it to the checker: 23-32% of the
// checker's CPU samples in perf profiles (perf record -g -p PID, samples
// under tcp_v4_rcv in tcp_conn_request, tcp_check_req, tcp_child_process or
// time-wait handling). The floor carries the same share.
// BenchmarkTCPChecksRemote measures servers behind a network instead.
func BenchmarkTCPChecks(b *testing.B) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperListener$")
	cmd.Env = append(os.Environ(), "HALO_HELPER_LISTEN=1")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() }()
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "ready" {
		lines = append(lines, sc.Text())
	}
	addrs, pid := helperOutput(lines)
	if len(addrs) == 0 {
		b.Fatal("helper gave no listeners")
	}
	for i := 0; i < b.N; i++ {
		measureChecks(b, addrs, pid).report(b, "10,000 TCP checks, delay_loop 1 s")
	}
}

// helperOutput reads the listener helper's output: its pid and addresses.
func helperOutput(lines []string) (addrs []string, pid int) {
	for _, l := range lines {
		if p, ok := strings.CutPrefix(l, "pid "); ok {
			pid, _ = strconv.Atoi(p)
		} else if strings.Contains(l, ":") {
			addrs = append(addrs, l)
		}
	}
	return addrs, pid
}

// checkRun is one measurement of 10,000 checks at delay_loop 1 s.
type checkRun struct {
	Cores, User, Sys, Rate, HeapMB float64
	// PerRate is Cores scaled to exactly 10,000 checks/s: on a busy
	// machine the checks fall behind their delay_loop and cost less.
	PerRate, Floor, Fresh, Listener float64
	Down, Polled, Connects          uint64
}

// measureChecks runs 10,000 TCP_CHECKs against addrs for 2 s of warmup
// and 5 s of measurement, then the floors, in this process.
func measureChecks(tb testing.TB, addrs []string, listenerPid int) checkRun {
	const n = 10000
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
	l0 := procCPU(listenerPid)
	fast0, polled0 := tcpFastConnects.Load(), tcpPolledConnects.Load()
	w0 := time.Now()
	time.Sleep(5 * time.Second)
	u1, s1 := cpuTime()
	wall := float64(time.Since(w0))
	var r checkRun
	r.Listener = float64(procCPU(listenerPid)-l0) / wall
	fast, polled := tcpFastConnects.Load()-fast0, tcpPolledConnects.Load()-polled0
	r.Polled, r.Connects = polled, fast+polled
	r.User, r.Sys = float64(u1-u0)/wall, float64(s1-s0)/wall
	r.Cores = r.User + r.Sys
	var att1 uint64
	for _, j := range jobs {
		st := j.Status()
		att1 += st.Attempts
		if !st.Up {
			r.Down++
		}
	}
	r.Rate = float64(att1-att0) / time.Since(w0).Seconds()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	cancel()
	s.Wait()
	r.HeapMB = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
	r.PerRate = r.Cores * n / r.Rate
	r.Floor = bareConnectCores(tb, addrs, n, 2*time.Second, true)
	r.Fresh = bareConnectCores(tb, addrs, n, 2*time.Second, false)
	return r
}

func (r checkRun) report(b *testing.B, title string) {
	b.ReportMetric(r.Cores, "cores")
	b.ReportMetric(r.User, "user-cores")
	b.ReportMetric(r.Rate, "checks/s")
	b.ReportMetric(r.HeapMB, "heap-MB")
	b.ReportMetric(r.PerRate, "cores@10k/s")
	b.ReportMetric(r.Floor, "floor-cores@10k/s")
	b.ReportMetric(r.Fresh, "new-socket-floor-cores@10k/s")
	b.ReportMetric(r.Listener, "listener-cores")
	fmt.Fprintf(os.Stderr, "\n%s: %.3f cores (user %.3f, system %.3f), %.0f checks/s, %.1f MB heap, %d down\n",
		title, r.Cores, r.User, r.Sys, r.Rate, r.HeapMB, r.Down)
	fmt.Fprintf(os.Stderr, "at exactly 10,000 checks/s: %.3f cores; its bare system calls (floor, same run): %.3f cores, ratio %.2f; with a new socket per check: %.3f cores; listener process: %.3f cores; %d of %d connects waited in the poller\n",
		r.PerRate, r.Floor, r.PerRate/r.Floor, r.Fresh, r.Listener, r.Polled, r.Connects)
	if r.Down > 0 {
		b.Errorf("%d checks reported down against live listeners", r.Down)
	}
}

// procCPU is the user+system CPU time another process has used.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th of the line, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// bareConnectCores is the reference the checker is measured against in the
// same run: the CPU, in cores, of the fast path's system calls alone at
// rate checks a second for d, on one goroutine with nothing else running,
// against the same listeners. No scheduler, goroutine or timer can do
// better. reuse is what the checker does (connect, connect, connect
// AF_UNSPEC on one socket); without it, a new socket per check (socket,
// connect, connect, SO_LINGER 0, close), what the checker did before.
func bareConnectCores(b testing.TB, addrs []string, rate int, d time.Duration, reuse bool) float64 {
	sas := make([]*unix.SockaddrInet4, len(addrs))
	for i, a := range addrs {
		ap := netip.MustParseAddrPort(a)
		sas[i] = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	linger := &unix.Linger{Onoff: 1}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	total := int(d.Seconds() * float64(rate))
	c0 := threadCPU()
	start := time.Now()
	fd := -1
	for i := 0; i < total; i++ {
		if i%100 == 0 { // pace to rate, as the scheduler does
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		}
		var err error
		if fd < 0 {
			if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
				b.Fatal(err)
			}
		}
		sa := sas[i%len(sas)]
		err = unix.Connect(fd, sa)
		if err == unix.EINPROGRESS {
			err = unix.Connect(fd, sa)
		}
		for try := 0; err == unix.EALREADY && try < 5; try++ { // softirqs deferred to ksoftirqd on a busy machine
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 1000)
			err = unix.Connect(fd, sa)
		}
		if err != nil {
			b.Fatalf("bare connect: %v", err)
		}
		if reuse {
			if err := rawDisconnect(fd); err != nil {
				b.Fatal(err)
			}
			continue
		}
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, linger)
		unix.Close(fd)
		fd = -1
	}
	if fd >= 0 {
		unix.Close(fd)
	}
	return (threadCPU() - c0).Seconds() * float64(rate) / float64(total)
}

// threadCPU is the user+system CPU time of the calling thread.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
