package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The checker's pace, measured where the checks land
// (docs/keepalived.md#checker-timing). With delay_loop 3, retry 2 and
// delay_before_retry 1, a healthy real is checked every 3 s; once it starts
// failing, the first failure is followed by 2 retries 1 s apart, and only
// the third failure takes it down (notify_down); after that it is checked
// every 3 s again. A scheduler that ignored the probe's next time would
// retry at delay_loop; one that ignored retry would declare it down at the
// first failure.
func TestWiringCheckerRetryTiming(t *testing.T) {
	w := newWLab(t, 118, "n1", "r1")
	n1 := w.ns["n1"]
	r1 := &wReal{ns: w.ns["r1"], name: "r1", addr: w.ip(2) + ":80"}
	r1.start(t)
	downLog := filepath.Join(t.TempDir(), "down.log")
	mark := wScript(t, "mark.sh", fmt.Sprintf(`date +%%s.%%N >> %s`, downLog))

	conf := writeFile(t, "n1.conf", wGlobal("n1")+fmt.Sprintf(`
virtual_server %s 80 {
  delay_loop 3
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server %s 80 {
    notify_down %s
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 2
      delay_before_retry 1
    }
  }
}
`, w.ip(100), w.ip(2), mark))
	startHalod(t, n1, conf)

	// Healthy: every delay_loop.
	t0 := time.Now()
	if waitFor(15*time.Second, func() bool { return len(r1.checks(t0)) >= 3 }) < 0 {
		t.Fatalf("only %d checks in 15 s", len(r1.checks(t0)))
	}
	ok := r1.checks(t0)
	if g := ok[2].at.Sub(ok[1].at); g < 2500*time.Millisecond || g > 4500*time.Millisecond {
		t.Fatalf("healthy real checked %v apart, want delay_loop 3 s", g)
	}

	// Fail right after a check, so the next one is a delay_loop away.
	time.Sleep(200 * time.Millisecond)
	r1.setFailing(true)
	failFrom := time.Now()
	if waitFor(20*time.Second, func() bool { return len(r1.checks(failFrom)) >= 5 }) < 0 {
		t.Fatalf("only %d checks in 20 s after the real started failing", len(r1.checks(failFrom)))
	}
	f := r1.checks(failFrom)
	var gaps []time.Duration
	for i := 1; i < len(f); i++ {
		gaps = append(gaps, f[i].at.Sub(f[i-1].at).Round(10*time.Millisecond))
	}
	t.Logf("gaps between checks after the real started failing: %v", gaps)
	for i, g := range gaps[:2] {
		if g < 600*time.Millisecond || g > 1900*time.Millisecond {
			t.Errorf("retry %d came %v after the previous failure, want delay_before_retry 1 s", i+1, g)
		}
	}
	for i, g := range gaps[2:4] {
		if g < 2500*time.Millisecond || g > 4500*time.Millisecond {
			t.Errorf("check %d after going down came %v after the previous one, want delay_loop 3 s", i+1, g)
		}
	}

	// Down exactly at the third failure: not before it, and soon after it.
	lines := readLines(downLog)
	if len(lines) != 1 {
		t.Fatalf("notify_down ran %d times, want once", len(lines))
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(lines[0]), 64)
	if err != nil {
		t.Fatal(err)
	}
	down := time.Unix(0, int64(sec*1e9))
	if down.Before(f[2].at) || down.Sub(f[2].at) > 1500*time.Millisecond {
		t.Errorf("notify_down at %v relative to the third failing check, want just after it (failures at %v, %v, %v)",
			down.Sub(f[2].at).Round(10*time.Millisecond), f[0].at.Sub(failFrom).Round(10*time.Millisecond),
			f[1].at.Sub(failFrom).Round(10*time.Millisecond), f[2].at.Sub(failFrom).Round(10*time.Millisecond))
	}
}
