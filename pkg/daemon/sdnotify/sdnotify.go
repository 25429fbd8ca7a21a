// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// datagrams of KEY=VALUE lines to the Unix socket named by NOTIFY_SOCKET.
// It is a few lines, so halo carries them rather than a dependency.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends to one socket; the zero value and a nil *Notifier do
// nothing (halod not run by systemd).
type Notifier struct {
	mu   sync.Mutex
	addr *net.UnixAddr
	// Watchdog is the interval systemd expects WATCHDOG=1 within
	// (WATCHDOG_USEC); 0 when the watchdog is off.
	Watchdog time.Duration
}

// FromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. It returns
// nil when there is no socket. Like sd_notify with unset_environment, it
// clears NOTIFY_SOCKET so scripts halod runs do not talk to systemd.
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	n := New(path)
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid := os.Getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.Watchdog = time.Duration(us) * time.Microsecond
		}
	}
	os.Unsetenv("NOTIFY_SOCKET")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	return n
}

// New sends to the socket at path; a leading '@' names an abstract socket.
func New(path string) *Notifier {
	name := path
	if strings.HasPrefix(path, "@") {
		name = "\x00" + path[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Send sends the lines as one datagram.
func (n *Notifier) Send(lines ...string) error {
	if n == nil || n.addr == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_, err = c.Write([]byte(strings.Join(lines, "\n") + "\n"))
	return err
}

// Ready says start-up (or a reload) is complete.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+status)
}

// Reloading says a reload began; systemd (Type=notify-reload and
// ExecReload waiters) pairs it with the next READY=1.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping says shutdown began.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Ping keeps the watchdog fed.
func (n *Notifier) Ping() error { return n.Send("WATCHDOG=1") }

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Sec*1_000_000 + ts.Nsec/1000
}
