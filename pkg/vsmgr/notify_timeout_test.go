package vsmgr

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A hung notify_down is killed after the notify timeout, and the scripts
// queued behind it still run.
func TestNotifyTimeoutKillsHungScript(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sh := filepath.Join(dir, "n.sh")
	os.WriteFile(sh, []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755)
	m, rec := newMgr(t, fmt.Sprintf(`
virtual_server 10.0.0.100 80 {
  protocol TCP
  quorum 1
  quorum_down "%s quorum down"
  real_server 10.0.1.1 8080 {
    notify_down "/bin/sleep 30"
    TCP_CHECK { } }
}`, sh))
	m.SetNotifyTimeout(300 * time.Millisecond)
	start := time.Now()
	step(t, m, rec, 0, false, "")
	m.Drain(10 * time.Second)
	b, _ := os.ReadFile(log)
	if got := strings.TrimSpace(string(b)); got != "quorum down" {
		t.Fatalf("after a hung notify_down, scripts ran: %q (waited %v)", got, time.Since(start))
	}
	if el := time.Since(start); el > 8*time.Second {
		t.Fatalf("the hung script held the queue %v", el)
	}
}
