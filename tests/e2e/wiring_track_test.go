package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A vrrp_script's weight must reach the election: halod (n1) against a
// keepalived 2.2.7 peer (n2, priority 100, preempting). The script is
// `test -e FILE`, so the test moves the tracker by creating and removing
// FILE. Expected from keepalived's rules (docs/keepalived.md#weights):
//
//   - weight: n1 at 150 tracks two scripts of weight -30 each. One failing
//     leaves it at 120, still above keepalived's 100, so nothing moves (a
//     script treated as weight 0 would put n1 in FAULT and move the VIP).
//     Both failing leave it at 90: keepalived discards n1's adverts and takes
//     the VIP after Master_Down_Interval (about 3.6 s), and n1 preempts it
//     back once the scripts pass again (150 > 100).
//   - init_fail: n1 at 150, weight -60, fall 6, init_fail joins a running
//     keepalived master with a script that fails. init_fail starts the script
//     failed, so n1 is 90 from its first result and never preempts. Without
//     init_fail the script would start OK and need 6 failures (about 5 s) to
//     fail, long enough for n1 at 150 to preempt (about 3.4 s). Once the
//     script passes (rise 1), n1 is 150 and preempts. (keepalived 2.2.7
//     keeps an init_fail script's counter one pass short of rise, a normal
//     one at rise + fall - 1: docs/keepalived.md#init_fail-measured.)
func TestWiringTrackScript(t *testing.T) {
	for i, c := range []string{"weight", "init_fail"} {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			runTrackScript(t, 110+i, c)
		})
	}
}

// track_script's `reverse` turns the adjustment round
// (docs/keepalived.md#weights), measured on keepalived 2.2.7 in this very
// scenario (two keepalived nodes, the peer at 100):
//
//   - base 120, `chk weight 60 reverse`: 120 while the script fails (no
//     change), "Changing effective priority from 120 to 60" once it passes;
//   - base 90, `chk weight -60 reverse`: "from 90 to 150" while it fails,
//     back to 90 once it passes.
//
// Either way n1 is master exactly while the script fails. A reverse that
// inverted the script's status instead (120+60 / 120, 90 / 30) would keep
// n1 master throughout in the first case and never master in the second.
func TestWiringTrackScriptReverse(t *testing.T) {
	for i, c := range []string{"reverse+60", "reverse-60"} {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			runTrackScript(t, 120+i, c)
		})
	}
}

func runTrackScript(t *testing.T, subnet int, variant string) {
	w := newWLab(t, subnet, "n1", "n2")
	n1, n2 := w.ns["n1"], w.ns["n2"]
	vip := w.ip(100)
	dir := t.TempDir()
	flagOf := func(name string) string { return filepath.Join(dir, name) }
	set := func(name string, on bool) {
		t.Helper()
		if on {
			if err := os.WriteFile(flagOf(name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		} else if err := os.Remove(flagOf(name)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	setFlag := func(on bool) { t.Helper(); set("chk", on) }
	script := func(name, opts string) string {
		return fmt.Sprintf("vrrp_script %s {\n  script \"/usr/bin/test -e %s\"\n  interval 1\n%s}\n", name, flagOf(name), opts)
	}

	var halodConf string
	switch variant {
	case "weight":
		halodConf = wGlobal("n1") + script("chkA", "") + script("chkB", "") +
			wInstance("VI_1", 51, 150, vip, "  track_script {\n    chkA weight -30\n    chkB weight -30\n  }")
	case "reverse+60":
		halodConf = wGlobal("n1") + script("chk", "") +
			wInstance("VI_1", 51, 120, vip, "  track_script {\n    chk weight 60 reverse\n  }")
	case "reverse-60":
		halodConf = wGlobal("n1") + script("chk", "") +
			wInstance("VI_1", 51, 90, vip, "  track_script {\n    chk weight -60 reverse\n  }")
	case "init_fail":
		halodConf = wGlobal("n1") + script("chk", "  fall 6\n  init_fail\n") +
			wInstance("VI_1", 51, 150, vip, "  track_script {\n    chk weight -60\n  }")
	}
	keepConf := wGlobal("n2") + wInstance("VI_1", 51, 100, vip, "")

	switch variant {
	case "weight":
		set("chkA", true)
		set("chkB", true)
		startHalod(t, n1, writeFile(t, "n1.conf", halodConf))
		startKeepalivedPeer(t, n2, writeFile(t, "n2.conf", keepConf))
		waitHolder(t, 10*time.Second, vip, "n1", "scripts passing: n1 at 150 against 100", n1, n2)
		holdFor(t, 2*time.Second, vip, "n1", "scripts passing", n1, n2)

		set("chkA", false) // 150 - 30 = 120 > 100: still master
		holdFor(t, 6*time.Second, vip, "n1", "one script failing: n1 at 120 stays master over 100", n1, n2)

		set("chkB", false) // 150 - 60 = 90 < 100
		took := waitHolder(t, 10*time.Second, vip, "n2", "both scripts failing: n1 at 90 must lose to keepalived at 100", n1, n2)
		t.Logf("scripts failed: VIP on keepalived after %v", took)
		holdFor(t, 2*time.Second, vip, "n2", "scripts failing", n1, n2)

		set("chkA", true) // back to 150: preempts after Master_Down
		set("chkB", true)
		took = waitHolder(t, 10*time.Second, vip, "n1", "scripts passing again: n1 at 150 must preempt", n1, n2)
		t.Logf("scripts recovered: VIP back on halod after %v", took)

	case "reverse+60", "reverse-60":
		// keepalived 2.2.7: 120 / 90 while failing → 120 / 150; passing → 60 / 90.
		setFlag(false)
		startHalod(t, n1, writeFile(t, "n1.conf", halodConf))
		startKeepalivedPeer(t, n2, writeFile(t, "n2.conf", keepConf))
		waitHolder(t, 10*time.Second, vip, "n1", variant+", script failing: n1 above 100", n1, n2)
		holdFor(t, 2*time.Second, vip, "n1", variant+", script failing", n1, n2)

		setFlag(true)
		took := waitHolder(t, 10*time.Second, vip, "n2", variant+", script passing: n1 below 100 must lose", n1, n2)
		t.Logf("%s: VIP on keepalived %v after the script started passing", variant, took)

		setFlag(false)
		waitHolder(t, 10*time.Second, vip, "n1", variant+", script failing again: n1 must preempt", n1, n2)

	case "init_fail":
		setFlag(false) // the script fails
		startKeepalivedPeer(t, n2, writeFile(t, "n2.conf", keepConf))
		waitHolder(t, 10*time.Second, vip, "n2", "keepalived alone", n1, n2)
		startHalod(t, n1, writeFile(t, "n1.conf", halodConf))
		// Failed from the start: 90, no preemption. Without init_fail n1
		// would be 150 for about 5 s and preempt after about 3.4 s.
		holdFor(t, 8*time.Second, vip, "n2", "init_fail: a failing script starts failed (n1 at 90)", n1, n2)
		setFlag(true)
		start := time.Now()
		waitHolder(t, 10*time.Second, vip, "n1", "init_fail: once the script passes n1 is 150 and preempts", n1, n2)
		t.Logf("init_fail: halod preempted %v after the script started passing", time.Since(start).Round(100*time.Millisecond))
	}
}

// init_fail on a weight-0 script whose first runs fail: the instance starts
// in FAULT and leaves it (to BACKUP, then MASTER when alone) only after
// `rise` passing runs once the script has been fixed. Measured with
// keepalived 2.2.7 in this scenario: notify saw FAULT, BACKUP (3 s after the
// fix, rise 3), MASTER (docs/keepalived.md#vrrp_script). An instance that
// ignored init_fail would start as BACKUP and only then fall into FAULT.
func TestWiringInitFailStartsInFault(t *testing.T) {
	w := newWLab(t, 112, "n1")
	n1 := w.ns["n1"]
	vip := w.ip(100)
	dir := t.TempDir()
	flag := filepath.Join(dir, "ok") // absent: the script fails
	logf := filepath.Join(dir, "notify.log")
	note := wScript(t, "note.sh", fmt.Sprintf(`echo "$3" >> %s`, logf))
	conf := wGlobal("n1") + fmt.Sprintf(`vrrp_script chk {
  script "/usr/bin/test -e %s"
  interval 1
  rise 3
  init_fail
}
`, flag) + wInstance("VI_1", 51, 100, vip, fmt.Sprintf("  track_script {\n    chk\n  }\n  notify %s", note))
	startHalod(t, n1, writeFile(t, "n1.conf", conf))
	time.Sleep(3 * time.Second)
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, 15*time.Second, vip, "n1", "init_fail: master once the script has passed rise times", n1)
	time.Sleep(300 * time.Millisecond) // the MASTER notification is queued after the VIP
	got := readLines(logf)
	want := []string{"FAULT", "BACKUP", "MASTER"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notified states %q, want %q (init_fail: INIT goes straight to FAULT)", got, want)
	}
}
