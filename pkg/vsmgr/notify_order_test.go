package vsmgr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/script"
)

// slowBackend records, for every Apply, when it returned and whether the
// first real was down in it.
type slowBackend struct {
	*dataplane.Recorder
	delay time.Duration
	mu    sync.Mutex
	done  []time.Time
}

func (s *slowBackend) Apply(ctx context.Context, desired []dataplane.Service) error {
	time.Sleep(s.delay)
	err := s.Recorder.Apply(ctx, desired)
	s.mu.Lock()
	s.done = append(s.done, time.Now())
	s.mu.Unlock()
	return err
}

// A real server's notify script runs once the data plane has its new
// state, as keepalived runs notify_down after removing the real from IPVS:
// with a data plane that takes 300 ms to apply, the script still starts
// after the apply returned; and without an apply at all it runs after a
// second rather than never.
func TestNotifyRunsAfterTheDataPlaneApplied(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := filepath.Join(dir, "n.sh")
	os.WriteFile(sh, []byte("#!/bin/sh\ndate +%s.%N >> "+log+"\n"), 0o755)
	be := &slowBackend{Recorder: dataplane.NewRecorder(), delay: 300 * time.Millisecond}
	m, err := New(load(t, fmt.Sprintf(`
virtual_server 10.0.0.100 80 {
  protocol TCP
  real_server 10.0.1.1 8080 {
    notify_down "%s"
    TCP_CHECK { } }
  real_server 10.0.1.2 8080 { TCP_CHECK { } }
}`, sh)), be, &script.Runner{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	ran := func() time.Time {
		t.Helper()
		m.Drain(5 * time.Second)
		b, _ := os.ReadFile(log)
		lines := strings.Fields(string(b))
		if len(lines) == 0 {
			t.Fatal("the notify script did not run")
		}
		var sec, nsec int64
		fmt.Sscanf(lines[len(lines)-1], "%d.%d", &sec, &nsec)
		return time.Unix(sec, nsec)
	}

	m.SetCheck(0, 0, 0, false, -1, nil)
	go m.Apply(context.Background())
	at := ran()
	be.mu.Lock()
	applied := be.done[len(be.done)-1]
	be.mu.Unlock()
	if at.Before(applied) {
		t.Fatalf("notify_down ran %v before the data plane applied the change", applied.Sub(at))
	}

	// No apply follows: the script is not held back for good.
	os.Remove(log)
	m.SetCheck(0, 0, 0, true, -1, nil)
	m.SetCheck(0, 0, 0, false, -1, nil)
	start := time.Now()
	at = ran()
	if d := at.Sub(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("without an apply the script ran after %v, want about a second", d)
	}
}
