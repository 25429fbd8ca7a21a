package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

// The daemon starts lvs_notify_fifo_script once, with the FIFO as its
// argument; notify_fifo_script is pkg/vrrpd's to start (the fake VRRP side
// here does not), so the daemon must not start it a second time.
func TestFIFOScriptsStartedOnce(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "ran")
	sh := filepath.Join(dir, "s.sh")
	os.WriteFile(sh, []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755)
	lvs, all := filepath.Join(dir, "lvs.fifo"), filepath.Join(dir, "all.fifo")
	conf := fmt.Sprintf("global_defs {\n  notify_fifo %s\n  notify_fifo_script \"%s all\"\n  lvs_notify_fifo %s\n"+
		"  lvs_notify_fifo_script \"%s lvs\"\n}\n", all, sh, lvs, sh) + instance
	start(t, conf, nil)
	want := "lvs " + lvs
	deadline := time.Now().Add(5 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(log)
		if got = strings.TrimSpace(string(b)); got != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // room for a second, wrong start
	b, _ := os.ReadFile(log)
	if got = strings.TrimSpace(string(b)); got != want {
		t.Fatalf("FIFO scripts ran as %q, want %q", got, want)
	}
	if st, err := os.Stat(lvs); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("lvs_notify_fifo not made: %v", err)
	}
}

// --notify-timeout reaches the VRRP daemon halod builds.
func TestNotifyTimeoutReachesVRRPD(t *testing.T) {
	if got := (Options{}).notifyTimeout(); got != 30*time.Second {
		t.Fatalf("default notify timeout %v", got)
	}
	v := newVRRPD(&config.Config{}, slog.Default(), nil, (Options{NotifyTimeout: 2 * time.Second}).notifyTimeout())
	if v.NotifyTimeout != 2*time.Second {
		t.Fatalf("vrrpd NotifyTimeout %v", v.NotifyTimeout)
	}
}
