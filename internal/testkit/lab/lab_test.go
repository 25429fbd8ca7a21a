package lab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// Two namespaces on a bridge exchange real UDP datagrams (IPv4 and IPv6) and
// ping each other.
func TestBridgeExchange(t *testing.T) {
	RequireRoot(t)
	l := New(t)
	sw := l.Switch("sw")
	a, b := l.NS("a"), l.NS("b")
	sw.Plug(a, "eth0")
	sw.Plug(b, "eth0")
	a.Addr("eth0", "10.77.0.1/24")
	a.Addr("eth0", "fd00:77::1/64")
	b.Addr("eth0", "10.77.0.2/24")
	b.Addr("eth0", "fd00:77::2/64")

	for _, dst := range []string{"10.77.0.2", "fd00:77::2"} {
		var conn net.PacketConn
		if err := b.Do(func() (err error) {
			conn, err = net.ListenPacket("udp", net.JoinHostPort(dst, "0"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		port := conn.LocalAddr().(*net.UDPAddr).Port
		if err := a.Do(func() error {
			c, err := net.Dial("udp", net.JoinHostPort(dst, fmt.Sprint(port)))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("hello " + dst))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: %v", dst, err)
		}
		if got := string(buf[:n]); got != "hello "+dst {
			t.Fatalf("got %q", got)
		}
		if !strings.HasPrefix(from.String(), "10.77.0.1:") && !strings.HasPrefix(from.String(), "[fd00:77::1]:") {
			t.Fatalf("from %s", from)
		}
	}
	out := a.MustExec("ping", "-c", "2", "-W", "2", "10.77.0.2")
	if !strings.Contains(out, "2 received") {
		t.Fatalf("ping: %s", out)
	}
}

// Everything a lab creates is gone once its test ends, including background
// processes, and also when the test fails.
func TestCleanupLeavesNothing(t *testing.T) {
	RequireRoot(t)
	var names []string
	var pid int
	ok := t.Run("failing-inner", func(t *testing.T) {
		l := New(t)
		sw := l.Switch("sw")
		n := l.NS("x")
		sw.Plug(n, "eth0")
		p := n.Start("sleep", "60")
		pid = p.Pid()
		names = l.Names()
		for _, nm := range names {
			if !nsExists(nm) {
				t.Fatalf("%s not created", nm)
			}
		}
		t.Skip("ending the subtest early still runs cleanup")
	})
	_ = ok
	if len(names) != 2 {
		t.Fatalf("names %v", names)
	}
	for _, nm := range names {
		if nsExists(nm) {
			t.Errorf("namespace %s left behind", nm)
		}
	}
	if processAlive(pid) {
		t.Errorf("background process %d left running", pid)
	}
}

// A namespace left by a killed run (its pid is gone) is swept by the next
// lab; one belonging to a live process is not.
func TestSweepRemovesStale(t *testing.T) {
	RequireRoot(t)
	stale := fmt.Sprintf("%s%d-dead-x", Prefix, 4194305) // above the largest pid_max
	live := fmt.Sprintf("%s%d-live-x", Prefix, os.Getpid())
	for _, n := range []string{stale, live} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", stale).Run()
		_ = exec.Command("ip", "netns", "del", live).Run()
	})
	Sweep()
	if nsExists(stale) {
		t.Error("stale namespace not swept")
	}
	if !nsExists(live) {
		t.Error("live process's namespace was swept")
	}
}

func TestBackgroundProcessOutputAndVeth(t *testing.T) {
	RequireRoot(t)
	l := New(t)
	a, b := l.NS("a"), l.NS("b")
	l.Veth(a, "v0", b, "v1")
	a.Addr("v0", "10.78.0.1/30")
	b.Addr("v1", "10.78.0.2/30")
	b.Sysctl("net.ipv4.ip_forward", "1")
	if got := strings.TrimSpace(b.MustExec("cat", "/proc/sys/net/ipv4/ip_forward")); got != "1" {
		t.Fatalf("sysctl not applied: %q", got)
	}
	p := a.Start("ping", "-c", "3", "-i", "0.2", "10.78.0.2")
	if exited, err := p.Wait(10 * time.Second); !exited || err != nil {
		t.Fatalf("ping: exited %v err %v: %s", exited, err, p.Output())
	}
	if !strings.Contains(p.Output(), "3 received") {
		t.Fatalf("output: %s", p.Output())
	}
	if b.Link("v1").HardwareAddr == nil {
		t.Fatal("no MAC")
	}
}
