package vsmgr

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/check"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/script"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// log_all_failures logs every failed attempt of the checkers it covers
// (here set on one real), not only the state change; a real without it
// logs its state change once.
func TestLogAllFailures(t *testing.T) {
	var ports []int
	for i := 0; i < 2; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		l.Close() // nothing listens: every check fails
	}
	text := fmt.Sprintf(`virtual_server 10.0.0.100 80 {
  delay_loop 0.2
  lb_kind DR
  protocol TCP
  real_server 127.0.0.1 %d {
    log_all_failures
    TCP_CHECK { connect_timeout 1
      retry 0 } }
  real_server 127.0.0.1 %d {
    TCP_CHECK { connect_timeout 1
      retry 0 } }
}`, ports[0], ports[1])
	var buf syncBuf
	m, err := New(load(t, text), dataplane.NewRecorder(), &script.Runner{}, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sched := check.NewScheduler(0)
	defer func() { cancel(); sched.Wait(); m.Close() }()
	if err := m.Start(ctx, sched); err != nil {
		t.Fatal(err)
	}
	logged := func(port int) int {
		return strings.Count(buf.String(), fmt.Sprintf("msg=\"check failed\" virtual_server=[10.0.0.100]:tcp:80 real_server=[127.0.0.1]:tcp:%d", port))
	}
	deadline := time.Now().Add(10 * time.Second)
	for logged(ports[0]) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := logged(ports[0]); n < 3 {
		t.Fatalf("real with log_all_failures: %d failure lines, want at least 3\n%s", n, buf.String())
	}
	if n := logged(ports[1]); n != 0 {
		t.Fatalf("real without log_all_failures: %d failure lines, want 0\n%s", n, buf.String())
	}
}
