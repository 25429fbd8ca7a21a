package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// halod under a stand-in for systemd: NOTIFY_SOCKET and WATCHDOG_USEC
// from the environment, READY=1 after start-up, WATCHDOG=1 pings,
// RELOADING=1 + READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify")
	notes, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notes.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conf := writeConf(t, fmt.Sprintf("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 127.0.0.1 %d {\n    TCP_CHECK { }\n  }\n}\n",
		l.Addr().(*net.TCPAddr).Port))
	t.Setenv("NOTIFY_SOCKET", sockPath)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", "")
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-f", conf, "--dataplane", "none", "--control", filepath.Join(dir, "halod.sock"),
			"--metrics-addr", "", "--pid-file", filepath.Join(dir, "pid")}, &out, &errb)
	}()
	next := func() string {
		buf := make([]byte, 4096)
		notes.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := notes.Read(buf)
		if err != nil {
			t.Fatalf("sd_notify: %v\n%s", err, errb.String())
		}
		return string(buf[:n])
	}
	// wait reads until a message with prefix arrives, skipping watchdog pings.
	wait := func(prefix string) string {
		for {
			if n := next(); strings.HasPrefix(n, prefix) {
				return n
			} else if n != "WATCHDOG=1\n" {
				t.Fatalf("got %q while waiting for %s", n, prefix)
			}
		}
	}
	wait("READY=1")
	if os.Getenv("NOTIFY_SOCKET") != "" {
		t.Error("NOTIFY_SOCKET left in the environment for scripts")
	}
	start := time.Now()
	wait("WATCHDOG=1")
	wait("WATCHDOG=1")
	t.Logf("two watchdog pings in %v (WATCHDOG_USEC 400 ms)", time.Since(start))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	wait("RELOADING=1\nMONOTONIC_USEC=")
	wait("READY=1")
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	wait("STOPPING=1")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("halod did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}
