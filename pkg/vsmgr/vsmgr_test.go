package vsmgr

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/script"
)

func load(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, d := config.Load("/k.conf", config.Options{ConfigID: "x", FS: config.MapFS{"/k.conf": text}})
	if err := d.Err(false); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newMgr(t *testing.T, text string) (*Manager, *dataplane.Recorder) {
	t.Helper()
	rec := dataplane.NewRecorder()
	m, err := New(load(t, text), rec, &script.Runner{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	if err := m.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m, rec
}

// reals renders the installed reals of the first service as "addr:port/w".
func reals(t *testing.T, rec *dataplane.Recorder) string {
	t.Helper()
	svcs, _ := rec.Services(context.Background())
	if len(svcs) == 0 {
		return "<no service>"
	}
	var out []string
	for _, r := range svcs[0].Reals {
		if r.Down {
			continue // failed: installed only so its established flows finish
		}
		out = append(out, fmt.Sprintf("%s/%d", r.Key(), r.Weight))
	}
	return strings.Join(out, " ")
}

func step(t *testing.T, m *Manager, rec *dataplane.Recorder, r int, up bool, want string) {
	t.Helper()
	m.SetCheck(0, r, 0, up, -1, nil)
	if err := m.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := reals(t, rec); got != want {
		t.Fatalf("after real %d up=%v: %s, want %s", r, up, got, want)
	}
}

const three = `
virtual_server 10.0.0.100 80 {
  protocol TCP
  lb_algo rr
  lb_kind DR
  quorum 2
  hysteresis 0
  sorry_server 10.0.9.9 80
  real_server 10.0.1.1 80 { weight 1
    TCP_CHECK { } }
  real_server 10.0.1.2 80 { weight 1
    TCP_CHECK { } }
  real_server 10.0.1.3 80 { weight 1
    TCP_CHECK { } }
}`

func TestQuorumBringsInTheSorryServer(t *testing.T) {
	m, rec := newMgr(t, three)
	if got := reals(t, rec); got != "10.0.1.1:80/1 10.0.1.2:80/1 10.0.1.3:80/1" {
		t.Fatalf("initial: %s", got)
	}
	svcs, _ := rec.Services(context.Background())
	if svcs[0].Scheduler != "rr" || svcs[0].Method != dataplane.DR {
		t.Fatalf("service %+v", svcs[0])
	}
	step(t, m, rec, 0, false, "10.0.1.2:80/1 10.0.1.3:80/1")
	step(t, m, rec, 1, false, "10.0.9.9:80/1") // live weight 1 < quorum 2
	if st := m.Status()[0]; st.QuorumUp || st.Sorry == nil || !st.Sorry.Up {
		t.Fatalf("status %+v", st)
	}
	step(t, m, rec, 1, true, "10.0.1.2:80/1 10.0.1.3:80/1") // quorum back, sorry out
	step(t, m, rec, 0, true, "10.0.1.1:80/1 10.0.1.2:80/1 10.0.1.3:80/1")
}

func TestHysteresis(t *testing.T) {
	m, rec := newMgr(t, strings.Replace(three, "hysteresis 0", "hysteresis 1", 1))
	// quorum 2 ± 1: lost below 1, regained at 3.
	step(t, m, rec, 0, false, "10.0.1.2:80/1 10.0.1.3:80/1")
	step(t, m, rec, 1, false, "10.0.1.3:80/1")
	step(t, m, rec, 2, false, "10.0.9.9:80/1")
	step(t, m, rec, 0, true, "10.0.9.9:80/1")
	step(t, m, rec, 1, true, "10.0.9.9:80/1")
	step(t, m, rec, 2, true, "10.0.1.1:80/1 10.0.1.2:80/1 10.0.1.3:80/1")
}

func TestInhibitOnFailureKeepsWeightZero(t *testing.T) {
	m, rec := newMgr(t, `
virtual_server 10.0.0.100 80 {
  protocol TCP
  real_server 10.0.1.1 80 { weight 3
    inhibit_on_failure
    TCP_CHECK { } }
  real_server 10.0.1.2 80 { weight 2
    TCP_CHECK { } }
}`)
	step(t, m, rec, 0, false, "10.0.1.1:80/0 10.0.1.2:80/2")
	step(t, m, rec, 1, false, "10.0.1.1:80/0")
	step(t, m, rec, 0, true, "10.0.1.1:80/3")
}

func TestMiscDynamicWeight(t *testing.T) {
	m, rec := newMgr(t, `
virtual_server 10.0.0.100 80 {
  protocol TCP
  real_server 10.0.1.1 80 { weight 5
    MISC_CHECK { misc_path /bin/true
      misc_dynamic } }
}`)
	for _, w := range []int{10, 3, 0} {
		m.SetCheck(0, 0, 0, true, w, nil)
		m.Apply(context.Background())
		if got, want := reals(t, rec), fmt.Sprintf("10.0.1.1:80/%d", w); got != want {
			t.Fatalf("dynamic weight: %s, want %s", got, want)
		}
	}
}

func TestAlphaStartsDown(t *testing.T) {
	m, rec := newMgr(t, `
virtual_server 10.0.0.100 80 {
  protocol TCP
  alpha
  real_server 10.0.1.1 80 {
    TCP_CHECK { } }
}`)
	if got := reals(t, rec); got != "" {
		t.Fatalf("alpha real installed before its first check: %q", got)
	}
	step(t, m, rec, 0, true, "10.0.1.1:80/1")
}

// notify_up/notify_down run with their arguments, in order, and the
// lvs_notify_fifo gets keepalived's lines.
func TestNotifyScriptsAndFIFO(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	fifo := filepath.Join(dir, "lvs.fifo")
	sh := filepath.Join(dir, "n.sh")
	os.WriteFile(sh, []byte("#!/bin/sh\necho \"$*\" >> "+log+"\n"), 0o755)
	m, rec := newMgr(t, fmt.Sprintf(`
global_defs { lvs_notify_fifo %s }
virtual_server 10.0.0.100 80 {
  protocol TCP
  quorum 1
  quorum_up "%s quorum up"
  quorum_down "%s quorum down"
  real_server 10.0.1.1 8080 {
    notify_up "%s rs1 up"
    notify_down "%s rs1 down"
    TCP_CHECK { } }
}`, fifo, sh, sh, sh, sh))
	// A reader holds the FIFO open, as a notify_fifo consumer does.
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(fifo, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	step(t, m, rec, 0, false, "")
	step(t, m, rec, 0, true, "10.0.1.1:8080/1")
	m.Drain(5 * time.Second)
	b, _ := os.ReadFile(log)
	if got := strings.TrimSpace(string(b)); got != "rs1 down\nquorum down\nrs1 up\nquorum up" {
		t.Fatalf("scripts ran:\n%s", got)
	}
	f.SetReadDeadline(time.Now().Add(time.Second))
	n, _ := f.Read(buf)
	want := "RS [10.0.1.1]:tcp:8080 [10.0.0.100]:tcp:80 DOWN\nVS [10.0.0.100]:tcp:80 DOWN\n" +
		"RS [10.0.1.1]:tcp:8080 [10.0.0.100]:tcp:80 UP\nVS [10.0.0.100]:tcp:80 UP\n"
	if got := string(buf[:n]); got != want {
		t.Fatalf("fifo:\n%q\nwant\n%q", got, want)
	}
}

func TestGroupAndFWMarkExpand(t *testing.T) {
	_, rec := newMgr(t, `
virtual_server_group G {
  10.0.0.1-3 80
  10.0.0.10 8080
  fwmark 7
}
virtual_server group G {
  protocol UDP
  persistence_timeout 60
  persistence_granularity 255.255.255.0
  real_server 10.0.1.1 80 { }
}`)
	svcs, _ := rec.Services(context.Background())
	var keys []string
	for _, s := range svcs {
		keys = append(keys, s.Key.String())
		if s.Persistence != 60*time.Second || s.PersistenceMask != 24 {
			t.Fatalf("persistence %+v", s)
		}
	}
	if got := strings.Join(keys, " "); got != "fwmark:7 udp:10.0.0.1:80 udp:10.0.0.2:80 udp:10.0.0.3:80 udp:10.0.0.10:8080" {
		t.Fatalf("keys %s", got)
	}
}
