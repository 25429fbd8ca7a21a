package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// omega runs the down notifiers at shutdown (docs/keepalived.md#omega-and-ha_suspend):
// two virtual servers check the same healthy real r1; A has omega, B has
// not. Both use alpha, so each real starts down and its notify_up proves the
// checker saw it healthy. At SIGTERM A's notify_down and quorum_down must
// run (r1 is up, A has quorum); B's must not.
func TestWiringOmega(t *testing.T) {
	w := newWLab(t, 117, "n1", "r1")
	n1 := w.ns["n1"]
	r1 := &wReal{ns: w.ns["r1"], name: "r1", addr: w.ip(2) + ":80"}
	r1.start(t)
	logf := filepath.Join(t.TempDir(), "notify.log")
	note := wScript(t, "note.sh", fmt.Sprintf(`echo "$*" >> %s`, logf))

	vs := func(port int, name, omega string) string {
		return fmt.Sprintf(`
virtual_server %s %d {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  alpha
%s
  quorum_up "%s %s quorum_up"
  quorum_down "%s %s quorum_down"
  real_server %s 80 {
    notify_up "%s %s r1_up"
    notify_down "%s %s r1_down"
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 0
    }
  }
}
`, w.ip(100), port, omega, note, name, note, name, w.ip(2), note, name, note, name)
	}
	conf := writeFile(t, "n1.conf", wGlobal("n1")+vs(80, "A", "  omega")+vs(81, "B", ""))
	p := startHalod(t, n1, conf)
	has := func(line string) bool { return slices.Contains(readLines(logf), line) }
	if waitFor(10*time.Second, func() bool { return has("A r1_up") && has("B r1_up") }) < 0 {
		t.Fatalf("r1 never reported up to both virtual servers: %q", readLines(logf))
	}
	time.Sleep(500 * time.Millisecond)
	before := len(readLines(logf))

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.Wait(10 * time.Second); !exited {
		t.Fatal("halod did not exit on SIGTERM")
	}
	time.Sleep(300 * time.Millisecond) // scripts halod started finish writing
	at := readLines(logf)[before:]
	t.Logf("notifications at shutdown: %q", at)
	for _, want := range []string{"A r1_down", "A quorum_down"} {
		if !slices.Contains(at, want) {
			t.Errorf("omega: %q did not run at shutdown (got %q)", want, at)
		}
	}
	for _, not := range []string{"B r1_down", "B quorum_down"} {
		if slices.Contains(at, not) {
			t.Errorf("no omega: %q ran at shutdown", not)
		}
	}
}
