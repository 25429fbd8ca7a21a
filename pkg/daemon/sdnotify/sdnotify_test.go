package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen stands in for systemd: a unixgram socket collecting datagrams.
func listen(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestMessages(t *testing.T) {
	path, c := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "")
	n := FromEnv()
	if n == nil || n.Watchdog != 3*time.Second {
		t.Fatalf("FromEnv: %+v", n)
	}
	n.Ready("running")
	if got := read(t, c); got != "READY=1\nSTATUS=running\n" {
		t.Fatalf("ready: %q", got)
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	now := ts.Sec*1_000_000 + ts.Nsec/1000
	n.Reloading()
	got := read(t, c)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("reloading: %q", got)
	}
	us, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || us < now || us > now+5_000_000 {
		t.Fatalf("MONOTONIC_USEC %d, clock was %d", us, now)
	}
	n.Stopping()
	if got := read(t, c); got != "STOPPING=1\n" {
		t.Fatalf("stopping: %q", got)
	}
	n.Ping()
	if got := read(t, c); got != "WATCHDOG=1\n" {
		t.Fatalf("watchdog: %q", got)
	}
}

func TestWatchdogForAnotherPID(t *testing.T) {
	path, _ := listen(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "1")
	if n := FromEnv(); n == nil || n.Watchdog != 0 {
		t.Fatalf("watchdog meant for pid 1 taken: %+v", n)
	}
}

func TestNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n != nil {
		t.Fatal("notifier without NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil {
		t.Fatal(err)
	}
}
