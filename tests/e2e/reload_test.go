package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

func vsConf(reals ...string) string {
	var b strings.Builder
	b.WriteString("virtual_server 10.91.0.100 80 {\n  delay_loop 1\n  lb_kind DR\n  protocol TCP\n")
	for _, r := range reals {
		fmt.Fprintf(&b, "  real_server %s 80 {\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n", r)
	}
	b.WriteString("}\n")
	return b.String()
}

// SIGHUP reloads: a broken config is refused and the running one stays;
// a good one replaces the virtual servers.
func TestReload(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	dir := l.NS("dir")
	sw.Plug(dir, "eth0")
	dir.Addr("eth0", "10.91.0.1/24")
	for i := 1; i <= 3; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i))
		sw.Plug(ns, "eth0")
		ip := fmt.Sprintf("10.91.0.%d", 10+i)
		ns.Addr("eth0", ip+"/24")
		w := &webReal{ns: ns, addr: ip + ":80"}
		w.Start(t)
		defer w.Stop()
	}
	conf := writeFile(t, "halod.conf", vsConf("10.91.0.11", "10.91.0.12"))
	sock := filepath.Join(t.TempDir(), "halod.sock")
	p := startHalod(t, dir, conf, "--control", sock)
	count := func() int {
		st := haloctlStatus(t, sock)
		if st == nil || len(st.VirtualServers) == 0 {
			return -1
		}
		n := 0
		for _, r := range st.VirtualServers[0].Reals {
			if r.Up {
				n++
			}
		}
		return n
	}
	if waitFor(5*time.Second, func() bool { return count() == 2 }) < 0 {
		t.Fatalf("start: %+v", haloctlStatus(t, sock))
	}

	os.WriteFile(conf, []byte(vsConf("10.91.0.11", "10.91.0.999")), 0o600)
	p.Signal(syscall.SIGHUP)
	if waitFor(5*time.Second, func() bool { return strings.Contains(p.Output(), "reload failed; keeping the running configuration") }) < 0 {
		t.Fatalf("broken config not refused:\n%s", p.Output())
	}
	if c := count(); c != 2 {
		t.Fatalf("after a failed reload %d reals up, want the running 2", c)
	}

	os.WriteFile(conf, []byte(vsConf("10.91.0.11", "10.91.0.12", "10.91.0.13")), 0o600)
	p.Signal(syscall.SIGHUP)
	if waitFor(5*time.Second, func() bool { return count() == 3 }) < 0 {
		t.Fatalf("good config not applied: %+v\n%s", haloctlStatus(t, sock), p.Output())
	}
	select {
	case <-p.Done():
		t.Fatal("halod exited")
	default:
	}
}
