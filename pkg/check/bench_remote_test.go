package check

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// BenchmarkTCPChecksRemote is BenchmarkTCPChecks with the listeners in
// another network namespace, behind a veth pair whose ends receive in
// threaded NAPI: packets are processed by kernel threads, as a NIC's are
// in softirq, so connect() returns with the SYN sent, every check waits in
// the poller as it does against a server on another host, and the
// listener's half of the handshake is not charged to the checker (nor is
// the checker side's receive of the SYN-ACK: on a real NIC that is softirq
// time). Needs root; the checker runs in a child process in the director's
// namespace, since a goroutine's sockets belong to its thread's namespace.
func BenchmarkTCPChecksRemote(b *testing.B) {
	lab.RequireRoot(b)
	l := lab.New(b)
	dir, real := l.NS("dir"), l.NS("real")
	l.Veth(dir, "eth0", real, "eth0")
	dir.Addr("eth0", "10.87.0.1/24")
	real.Addr("eth0", "10.87.0.2/24")
	for _, ns := range []*lab.NS{dir, real} {
		ns.TxOff("eth0")
		// GRO gives a veth its NAPI instance, which threaded moves to a
		// kernel thread of its own.
		ns.MustExec("ethtool", "-K", "eth0", "gro", "on")
		ns.MustExec("sh", "-c", "echo 1 > /sys/class/net/eth0/threaded")
	}
	helper := real.Start("env", "HALO_HELPER_LISTEN=10.87.0.2", os.Args[0], "-test.run=^TestHelperListener$")
	for start := time.Now(); !strings.Contains(helper.Output(), "ready"); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			b.Fatalf("listener helper not ready: %s", helper.Output())
		}
	}
	addrs, pid := helperOutput(strings.Split(helper.Output(), "\n"))
	if len(addrs) == 0 {
		b.Fatalf("helper gave no listeners: %s", helper.Output())
	}
	for i := 0; i < b.N; i++ {
		checker := dir.Start("env", "HALO_BENCH_REMOTE="+strconv.Itoa(pid)+","+strings.Join(addrs, ","),
			os.Args[0], "-test.run=^TestHelperRemoteChecks$", "-test.v")
		if exited, err := checker.Wait(60 * time.Second); !exited || err != nil {
			b.Fatalf("checker process (exited %v): %v: %s", exited, err, checker.Output())
		}
		var r checkRun
		_, js, ok := strings.Cut(checker.Output(), "RESULT ")
		if !ok {
			b.Fatalf("checker process gave no result: %s", checker.Output())
		}
		js, _, _ = strings.Cut(js, "\n")
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			b.Fatalf("checker result %q: %v", js, err)
		}
		r.report(b, "10,000 TCP checks of servers behind threaded-NAPI veth, delay_loop 1 s")
	}
}

// TestHelperRemoteChecks is not a test: BenchmarkTCPChecksRemote runs the
// measurement in a process inside the director's namespace.
func TestHelperRemoteChecks(t *testing.T) {
	spec := os.Getenv("HALO_BENCH_REMOTE")
	if spec == "" {
		t.Skip("helper process for BenchmarkTCPChecksRemote")
	}
	f := strings.Split(spec, ",")
	pid, _ := strconv.Atoi(f[0])
	js, err := json.Marshal(measureChecks(t, f[1:], pid))
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("RESULT " + string(js) + "\n")
}
