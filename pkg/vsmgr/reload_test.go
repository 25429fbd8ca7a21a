package vsmgr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/check"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/script"
)

// installed renders every installed service as "key: addr:port/w ...".
func installed(t *testing.T, rec *dataplane.Recorder) string {
	t.Helper()
	svcs, _ := rec.Services(context.Background())
	var out []string
	for _, s := range svcs {
		var rs []string
		for _, r := range s.Reals {
			if r.Down {
				continue // failed: installed only so its established flows finish
			}
			rs = append(rs, fmt.Sprintf("%s/%d", r.Key(), r.Weight))
		}
		out = append(out, s.Key.String()+": "+strings.Join(rs, " "))
	}
	return strings.Join(out, "; ")
}

func vsText(addr string, reals ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual_server %s 80 {\n  lb_kind DR\n  protocol TCP\n", addr)
	for _, r := range reals {
		b.WriteString("  " + r + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func mustReload(t *testing.T, m *Manager, rec *dataplane.Recorder, text string) ReloadSummary {
	t.Helper()
	sum, err := m.Reload(load(t, text))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestReloadKeepsVerdictsAndAppliesDifference(t *testing.T) {
	r1 := "real_server 10.0.1.1 80 { weight 1\n TCP_CHECK { connect_timeout 3 } }"
	r2 := "real_server 10.0.1.2 80 { weight 1\n TCP_CHECK { connect_timeout 3 } }"
	m, rec := newMgr(t, vsText("10.0.0.100", r1, r2))
	step(t, m, rec, 1, false, "10.0.1.1:80/1") // r2 down

	// r1's weight changes, r2 is untouched (a blank line moves it: only
	// its position differs), r3 and a second virtual server are new.
	r1w5 := strings.Replace(r1, "weight 1", "weight 5", 1)
	r3 := "real_server 10.0.1.3 80 { weight 2\n TCP_CHECK { connect_timeout 3 } }"
	sum := mustReload(t, m, rec, "\n"+vsText("10.0.0.100", r1w5, r2, r3)+vsText("10.0.0.200", r1))
	if got, want := installed(t, rec), "tcp:10.0.0.100:80: 10.0.1.1:80/5 10.0.1.3:80/2; tcp:10.0.0.200:80: 10.0.1.1:80/1"; got != want {
		t.Fatalf("after reload:\n got %s\nwant %s", got, want)
	}
	if sum.KeptChecks != 2 || sum.RestartedChecks != 0 || sum.AddedVS != 1 || sum.AddedReals != 2 || sum.KeptReals != 2 {
		t.Fatalf("summary %v", sum)
	}
	// The kept check is the same object: its next verdict lands on the
	// new real server.
	st := m.Status()[0]
	if st.Reals[1].Up || st.Reals[1].Address != "10.0.1.2" {
		t.Fatalf("r2 after reload: %+v", st.Reals[1])
	}
	step(t, m, rec, 1, true, "10.0.1.1:80/5 10.0.1.2:80/1 10.0.1.3:80/2")

	// Removing the second virtual server and changing r2's checker: the
	// changed checker restarts (up, as it is not alpha), the service goes.
	step(t, m, rec, 1, false, "10.0.1.1:80/5 10.0.1.3:80/2")
	r2c := strings.Replace(r2, "connect_timeout 3", "connect_timeout 2", 1)
	sum = mustReload(t, m, rec, vsText("10.0.0.100", r1w5, r2c, r3))
	if got, want := installed(t, rec), "tcp:10.0.0.100:80: 10.0.1.1:80/5 10.0.1.2:80/1 10.0.1.3:80/2"; got != want {
		t.Fatalf("after second reload:\n got %s\nwant %s", got, want)
	}
	if sum.RemovedVS != 1 || sum.RestartedChecks != 1 || sum.KeptChecks != 2 {
		t.Fatalf("summary %v", sum)
	}

	// A config the manager cannot build changes nothing.
	// (The config package rejects an unknown group itself; the manager
	// checks again, so a hand-built config exercises the refusal.)
	bad := load(t, vsText("10.0.0.100", r1))
	bad.VirtualServers[0].Group = "NOPE"
	if _, err := m.Reload(bad); err == nil {
		t.Fatal("reload of a config with an unknown group succeeded")
	}
	m.Apply(context.Background())
	if got, want := installed(t, rec), "tcp:10.0.0.100:80: 10.0.1.1:80/5 10.0.1.2:80/1 10.0.1.3:80/2"; got != want {
		t.Fatalf("after refused reload:\n got %s\nwant %s", got, want)
	}
}

func TestDrainAndEnable(t *testing.T) {
	m, rec := newMgr(t, vsText("10.0.0.100", "real_server 10.0.1.1 80 { weight 3 }", "real_server 10.0.1.2 80 { weight 2 }"))
	id, err := ParseVS("10.0.0.100:80", "tcp")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetDrain(id, "10.0.1.1:80", true); err != nil {
		t.Fatal(err)
	}
	m.Apply(context.Background())
	if got := reals(t, rec); got != "10.0.1.1:80/0 10.0.1.2:80/2" {
		t.Fatalf("drained: %s", got)
	}
	// A reload keeps the drain.
	mustReload(t, m, rec, vsText("10.0.0.100", "real_server 10.0.1.1 80 { weight 4 }", "real_server 10.0.1.2 80 { weight 2 }"))
	if got := reals(t, rec); got != "10.0.1.1:80/0 10.0.1.2:80/2" {
		t.Fatalf("drain lost across reload: %s", got)
	}
	if err := m.SetDrain(id, "10.0.1.1:80", false); err != nil {
		t.Fatal(err)
	}
	m.Apply(context.Background())
	if got := reals(t, rec); got != "10.0.1.1:80/4 10.0.1.2:80/2" {
		t.Fatalf("enabled: %s", got)
	}
	for _, bad := range [][3]string{{"10.0.0.100:81", "tcp", "10.0.1.1:80"}, {"10.0.0.100:80", "udp", "10.0.1.1:80"},
		{"10.0.0.100:80", "tcp", "10.0.1.9:80"}, {"10.0.0.100:80", "tcp", "10.0.1.1"}} {
		id, err := ParseVS(bad[0], bad[1])
		if err == nil {
			err = m.SetDrain(id, bad[2], true)
		}
		if err == nil {
			t.Errorf("drain %v accepted", bad)
		}
	}
	for _, ref := range []string{"fwmark:0", "fwmark:x", "10.0.0.1", "10.0.0.1:80:1"} {
		if _, err := ParseVS(ref, ""); err == nil {
			t.Errorf("ParseVS(%q) accepted", ref)
		}
	}
	if id, err := ParseVS("[2001:db8::1]:443", "UDP"); err != nil || id != "[2001:db8::1]:443/udp" {
		t.Errorf("ParseVS v6: %q %v", id, err)
	}
}

// With the scheduler running, a down real stays down across a reload and
// its check carries on counting attempts (the job was not restarted).
func TestReloadKeepsRunningJob(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	livePort := l.Addr().(*net.TCPAddr).Port
	conf := func(w int) string {
		return fmt.Sprintf(`virtual_server 10.0.0.100 80 {
  delay_loop 1
  lb_kind DR
  protocol TCP
  real_server 127.0.0.1 %d { weight %d
    TCP_CHECK { connect_timeout 1
      retry 0 } }
  real_server 127.0.0.1 %d { weight 1
    TCP_CHECK { connect_timeout 1
      retry 0 } }
}`, livePort, w, deadPort)
	}
	rec := dataplane.NewRecorder()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := New(load(t, conf(1)), rec, &script.Runner{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sched := check.NewScheduler(0)
	defer func() { cancel(); sched.Wait(); m.Close() }()
	if err := m.Start(ctx, sched); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("127.0.0.1:%d/1", livePort)
	deadline := time.Now().Add(5 * time.Second)
	for reals(t, rec) != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := reals(t, rec); got != want {
		t.Fatalf("before reload: %s, want %s", got, want)
	}
	before := m.Status()[0].Reals[1].Checkers[0].Attempts
	if _, err := m.Reload(load(t, conf(7))); err != nil {
		t.Fatal(err)
	}
	m.Apply(ctx)
	want = fmt.Sprintf("127.0.0.1:%d/7", livePort)
	if got := reals(t, rec); got != want {
		t.Fatalf("right after reload: %s, want %s (the down real must stay out)", got, want)
	}
	deadline = time.Now().Add(5 * time.Second)
	for m.Status()[0].Reals[1].Checkers[0].Attempts <= before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := m.Status()[0].Reals[1].Checkers[0].Attempts; after <= before {
		t.Fatalf("attempts %d after reload, %d before: the kept job stopped", after, before)
	}
	if got := reals(t, rec); got != want {
		t.Fatalf("after the next check: %s, want %s", got, want)
	}
}
