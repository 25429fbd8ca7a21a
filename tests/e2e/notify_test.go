package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// notify scripts run strictly in order, one at a time, even when
// transitions come faster than the scripts finish (keepalived runs them
// concurrently and they can complete out of order).
func TestNotifyScriptsRunInOrder(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	n := l.NS("n1")
	sw.Plug(n, "eth0")
	n.Addr("eth0", "10.85.0.1/24")
	l.Veth(n, "tk0", n, "tk1")

	dir := t.TempDir()
	logf := filepath.Join(dir, "notify.log")
	script := filepath.Join(dir, "notify.sh")
	// Each run writes "begin STATE", sleeps, writes "end STATE": overlapping
	// runs would interleave begins and ends.
	body := fmt.Sprintf("#!/bin/sh\necho \"begin $3\" >> %s\nsleep 0.2\necho \"end $3\" >> %s\n", logf, logf)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	// A FIFO reader, open before halod starts, as a notify_fifo consumer.
	fifo := filepath.Join(dir, "vrrp.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ff, err := os.OpenFile(fifo, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	conf := writeFile(t, "n1.conf", fmt.Sprintf(`global_defs {
  script_user root
  enable_script_security
  vrrp_notify_fifo %s
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 61
  priority 100
  version 3
  advert_int 0.1
  track_interface {
    tk0
  }
  virtual_ipaddress {
    10.85.0.100/24
  }
  notify %s
}
`, fifo, script))
	p := startHalod(t, n, conf)
	if waitFor(5*time.Second, func() bool { return hasAddr(n, "10.85.0.100") }) < 0 {
		t.Fatal("never became master")
	}
	// A burst of transitions: FAULT, BACKUP, FAULT, BACKUP (→ MASTER)…
	for i := 0; i < 4; i++ {
		n.IP("link", "set", "tk0", "down")
		time.Sleep(50 * time.Millisecond)
		n.IP("link", "set", "tk0", "up")
		time.Sleep(50 * time.Millisecond)
	}
	if waitFor(10*time.Second, func() bool { return hasAddr(n, "10.85.0.100") }) < 0 {
		t.Fatal("did not return to master")
	}
	// Wait for the queue to drain: as many ends as transitions logged.
	re := regexp.MustCompile(`msg="VRRP transition" instance=VI_1 from=\w+ to=(\w+)`)
	var want []string
	waitFor(15*time.Second, func() bool {
		want = nil
		for _, m := range re.FindAllStringSubmatch(p.Output(), -1) {
			want = append(want, m[1])
		}
		b, _ := os.ReadFile(logf)
		return strings.Count(string(b), "end ") == len(want)
	})
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// The sequence the scenario is built to produce, independent of what
	// halod logs: start in BACKUP (only an owner starts as master), MASTER
	// after Master_Down_Interval, then each of the 4 flaps of the tracked
	// link is FAULT then BACKUP, and MASTER again once the link stays up.
	design := []string{"BACKUP", "MASTER"}
	for i := 0; i < 4; i++ {
		design = append(design, "FAULT", "BACKUP")
	}
	design = append(design, "MASTER")
	if !slices.Equal(want, design) {
		t.Fatalf("transitions %v, want %v (the scenario's design)\n%s", want, design, p.Output())
	}
	want = design
	if len(lines) != 2*len(want) {
		t.Fatalf("%d log lines for %d transitions:\n%s", len(lines), len(want), b)
	}
	for i, st := range want {
		if lines[2*i] != "begin "+st || lines[2*i+1] != "end "+st {
			t.Fatalf("run %d: got %q / %q, want begin/end %s (transitions %v)\n%s", i, lines[2*i], lines[2*i+1], st, want, b)
		}
	}
	t.Logf("%d notify runs, in order: %v", len(want), want)
	// The FIFO got keepalived's lines, in the same order.
	buf := make([]byte, 1<<16)
	nr, _ := ff.Read(buf)
	var wantFIFO strings.Builder
	for _, st := range want {
		fmt.Fprintf(&wantFIFO, "INSTANCE \"VI_1\" %s 100\n", st)
	}
	if string(buf[:nr]) != wantFIFO.String() {
		t.Fatalf("vrrp_notify_fifo:\n%s\nwant:\n%s", buf[:nr], wantFIFO.String())
	}
}
