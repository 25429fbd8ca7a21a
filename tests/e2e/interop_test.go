package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// requireKeepalived skips when Debian's keepalived is not installed (.ci/run
// installs it).
func requireKeepalived(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("keepalived not installed; .ci/run installs Debian's keepalived 2.2.7")
	}
}

// startKeepalived runs keepalived's VRRP child in the foreground in ns, with
// private pid files (docs/lab.md#running-keepalived).
func startKeepalived(t testing.TB, ns *lab.NS, conf string) *lab.Proc {
	t.Helper()
	dir := t.TempDir()
	p := ns.Start("keepalived", "-n", "-l", "-D", "-G", "-P", "-f", conf,
		"-p", filepath.Join(dir, "k.pid"), "-r", filepath.Join(dir, "k-vrrp.pid"))
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("keepalived in %s output:\n%s", ns.Tag, p.Output())
		}
	})
	return p
}

type interopCase struct {
	name        string
	version     int
	advert      string // advert_int
	auth        bool   // PASS
	unicast     bool
	v6          bool
	halodMaster bool // halod runs the higher priority
	vmac        bool // use_vmac
}

// keepalived log lines that mean it did not like what halod sent.
var keepalivedComplaint = regexp.MustCompile(`(?i)checksum|invalid|bad |mismatch|not present in|wrong|authentication|ttl`)

// halod and Debian's keepalived 2.2.7 side by side on one bridge, with halod
// in each role: both agree who is master, the VIP answers, and failover
// works both ways with neither side complaining about the other's packets.
func TestKeepalivedInterop(t *testing.T) {
	requireKeepalived(t)
	cases := []interopCase{
		{"v2 PASS multicast, halod master", 2, "1", true, false, false, true, false},
		{"v2 PASS multicast, keepalived master", 2, "1", true, false, false, false, false},
		{"v3 1s multicast, keepalived master", 3, "1", false, false, false, false, false},
		{"v3 10cs multicast, halod master", 3, "0.1", false, false, false, true, false},
		{"v2 unicast, keepalived master", 2, "1", false, true, false, false, false},
		{"v3 10cs unicast, halod master", 3, "0.1", false, true, false, true, false},
		{"v3 IPv6, halod master", 3, "1", false, false, true, true, false},
		{"v3 IPv6, keepalived master", 3, "1", false, false, true, false, false},
		{"v2 use_vmac, keepalived master", 2, "1", false, false, false, false, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each case has its own namespaces and subnet; running them side
			// by side keeps CI short. The daemons are idle most of the time.
			t.Parallel()
			runInterop(t, 90+i, c)
		})
	}
}

func interopConf(c interopCase, self, peer, vip string, prio int) string {
	var extra []string
	extra = append(extra, fmt.Sprintf("  version %d", c.version), fmt.Sprintf("  advert_int %s", c.advert))
	if c.auth {
		extra = append(extra, "  authentication {\n    auth_type PASS\n    auth_pass secret12\n  }")
	}
	if c.vmac {
		extra = append(extra, "  use_vmac")
	}
	if c.unicast {
		extra = append(extra, fmt.Sprintf("  unicast_src_ip %s\n  unicast_peer {\n    %s\n  }", self, peer))
	}
	// vrrpConf sets advert_int 1; the case's value comes later and wins.
	return vrrpConf("r"+self, prio, strings.Join(extra, "\n"), vip+" dev eth0")
}

func runInterop(t *testing.T, subnet int, c interopCase) {
	v := newVRRPLab(t, subnet)
	vip := fmt.Sprintf("10.%d.0.100", subnet)
	vipCIDR := vip + "/24"
	a1, a2 := fmt.Sprintf("10.%d.0.1", subnet), fmt.Sprintf("10.%d.0.2", subnet)
	if c.v6 {
		vip = fmt.Sprintf("fd00:%d::100", subnet)
		vipCIDR = vip + "/64"
		a1, a2 = fmt.Sprintf("fd00:%d::1", subnet), fmt.Sprintf("fd00:%d::2", subnet)
	}
	// n1 runs the master (priority 150), n2 the backup (100).
	conf1 := writeFile(t, "n1.conf", interopConf(c, a1, a2, vipCIDR, 150))
	conf2 := writeFile(t, "n2.conf", interopConf(c, a2, a1, vipCIDR, 100))

	var master, backup, halod, keep *lab.Proc
	startMaster := func() *lab.Proc {
		if c.halodMaster {
			return startHalod(t, v.n1, conf1)
		}
		return startKeepalived(t, v.n1, conf1)
	}
	master = startMaster()
	if c.halodMaster {
		halod = master
		backup = startKeepalived(t, v.n2, conf2)
		keep = backup
	} else {
		keep = master
		backup = startHalod(t, v.n2, conf2)
		halod = backup
	}

	if waitFor(10*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
		t.Fatal("VIP never appeared on the master")
	}
	time.Sleep(2 * time.Second)
	if hasAddr(v.n2, vip) {
		t.Fatal("VIP on both nodes: the backup does not accept the master's adverts")
	}
	kout := keep.Output()
	if c.halodMaster {
		if strings.Contains(kout, "Entering MASTER STATE") || !strings.Contains(kout, "Entering BACKUP STATE") {
			t.Fatalf("keepalived does not agree it is backup:\n%s", kout)
		}
	} else if !strings.Contains(kout, "Entering MASTER STATE") {
		t.Fatalf("keepalived does not say it is master:\n%s", kout)
	}
	ping := []string{"-c", "2", "-i", "0.2", "-W", "2", vip}
	if out := v.cl.MustExec("ping", ping...); !strings.Contains(out, "2 received") {
		t.Fatalf("client cannot ping the VIP: %s", out)
	}

	// Master stops cleanly: the backup takes over after its skew time.
	if err := master.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took := waitFor(6*time.Second, func() bool { return hasAddr(v.n2, vip) })
	if took < 0 {
		t.Fatal("backup did not take over after the master stopped")
	}
	t.Logf("takeover by the backup after %v", took)
	// The new master announced itself (GARP, or unsolicited NA for IPv6):
	// the client's neighbour entry moves without the client asking.
	wantMAC := v.mac2
	if c.vmac {
		wantMAC = "00:00:5e:00:01:33" // the virtual MAC follows the VIP
	}
	if waitFor(3*time.Second, func() bool { return neighMAC(v.cl, vip) == wantMAC }) < 0 {
		t.Fatalf("client neighbour entry for %s is %q, want the new master's %s (n1 %s, n2 %s)", vip, neighMAC(v.cl, vip), wantMAC, v.mac1, v.mac2)
	}
	master.Wait(5 * time.Second)
	if waitFor(3*time.Second, func() bool { return !hasAddr(v.n1, vip) }) < 0 {
		t.Fatal("stopped master kept the VIP")
	}

	// The higher priority comes back and preempts.
	master = startMaster()
	if c.halodMaster {
		halod = master
	} else {
		keep = master
	}
	if waitFor(10*time.Second, func() bool { return hasAddr(v.n1, vip) && !hasAddr(v.n2, vip) }) < 0 {
		t.Fatalf("restarted master did not take the VIP back (n1 %v, n2 %v)", hasAddr(v.n1, vip), hasAddr(v.n2, vip))
	}
	// With use_vmac both nodes own the same MAC: the switch forwards to the
	// node that sent from it last until the new master's first GARP or
	// advert, so allow the client a moment.
	var out string
	if waitFor(3*time.Second, func() bool {
		out, _ = v.cl.Exec("ping", "-c", "1", "-W", "1", vip)
		return strings.Contains(out, "1 received")
	}) < 0 {
		t.Fatalf("client cannot ping the VIP after failback: %s\n%s", out, v.netState())
	}
	time.Sleep(time.Second)

	for _, line := range strings.Split(keep.Output(), "\n") {
		if keepalivedComplaint.MatchString(line) {
			t.Errorf("keepalived complains: %s", line)
		}
	}
	if out := halod.Output(); strings.Contains(out, "dropped VRRP advert") || strings.Contains(out, "level=ERROR") {
		t.Errorf("halod rejected keepalived's adverts or failed:\n%s", out)
	}
}
