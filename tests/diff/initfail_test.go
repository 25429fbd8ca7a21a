package diff

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// slowScript writes a track script that takes 3 s to answer and passes
// while Dir/ok exists: a check that is slow to give its first result
// (docs/keepalived.md#init_fail-measured). interval 4 keeps runs from
// overlapping in either daemon.
func slowScript(t *testing.T, n *net, pass bool) string {
	p := filepath.Join(n.Dir, "slow.sh")
	ok := filepath.Join(n.Dir, "ok")
	must(t, os.WriteFile(p, []byte("#!/bin/sh\nsleep 3\ntest -f "+ok+"\n"), 0o755))
	if pass {
		must(t, os.WriteFile(ok, nil, 0o644))
	}
	return p
}

func initFailConf(t *testing.T, n *net, pass bool, weight int) string {
	return conf(n, "  vrrp_notify_priority_changes",
		fmt.Sprintf("vrrp_script chk {\n  script \"%s\"\n  interval 4\n  timeout 5\n  weight %d\n  init_fail\n}\n",
			slowScript(t, n, pass), weight),
		instance(n, "VI_1", 51, 150, "  track_script {\n    chk\n  }", n.V4(100)+"/24"))
}

func setOK(t *testing.T, n *net) { must(t, os.WriteFile(filepath.Join(n.Dir, "ok"), nil, 0o644)) }

// The node starts while its weight-0 init_fail script has not answered
// yet: keepalived shows no state (no FAULT) until the first result, then
// BACKUP and MASTER a Master_Down_Interval later.
func TestDiffInitFailSlowPass(t *testing.T) {
	runScenario(t, scenario{
		nut:  func(n *net) string { return initFailConf(t, n, true, 0) },
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{
			{"first run pending", nil, time.Second},
			{"first run passed", nil, 8 * time.Second},
		},
		quantum: time.Second, // interval 1
	}, 150)
}

// The same script failing its first run: FAULT once it has answered, and
// BACKUP then MASTER once it passes.
func TestDiffInitFailSlowFail(t *testing.T) {
	runScenario(t, scenario{
		nut:  func(n *net) string { return initFailConf(t, n, false, 0) },
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{
			{"first run pending", nil, time.Second},
			{"first run failed", nil, 3 * time.Second},
			{"script passes", setOK, 8 * time.Second},
		},
		quantum: time.Second,
	}, 152)
}

// A weight other than 0: the init_fail script counts as failed from the
// start (priority 150-60 = 90, below the peer's 100), so the node is
// BACKUP at once and preempts once the first run passes.
func TestDiffInitFailWeighted(t *testing.T) {
	runScenario(t, scenario{
		nut:  func(n *net) string { return initFailConf(t, n, true, -60) },
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{
			{"first run pending", nil, time.Second},
			{"first run passed", nil, 8 * time.Second},
		},
		quantum: time.Second,
	}, 154)
}

// A weighted init_fail script whose first run fails: the weight applies
// from that result (150-60 = 90 under the peer's 100: the node stays
// BACKUP), and once the script passes the node is 150 and preempts.
func TestDiffInitFailWeightedFail(t *testing.T) {
	runScenario(t, scenario{
		nut:  func(n *net) string { return initFailConf(t, n, false, -60) },
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{
			{"first run pending", nil, time.Second},
			{"first run failed", nil, 3 * time.Second},
			{"script passes", setOK, 8 * time.Second},
		},
		quantum: time.Second,
	}, 156)
}

// Without init_fail a weight-0 script that is slow to fail its first run:
// keepalived shows no state before the result either, then FAULT.
func TestDiffInitFailUnsetSlowFail(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "  vrrp_notify_priority_changes",
				fmt.Sprintf("vrrp_script chk {\n  script \"%s\"\n  interval 4\n  timeout 5\n}\n", slowScript(t, n, false)),
				instance(n, "VI_1", 51, 150, "  track_script {\n    chk\n  }", n.V4(100)+"/24"))
		},
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}) },
		steps: []step{
			{"first run pending", nil, time.Second},
			{"first run failed", nil, 3 * time.Second},
			{"script passes", setOK, 8 * time.Second},
		},
		quantum: time.Second,
	}, 158)
}

// A sync-group member tracking a weight-0 script that is slow to pass: the
// whole group shows no state until the first result, then every member and
// the group go BACKUP, then MASTER.
func TestDiffInitFailSyncGroup(t *testing.T) {
	runScenario(t, scenario{
		nut: func(n *net) string {
			return conf(n, "",
				fmt.Sprintf("vrrp_script chk {\n  script \"%s\"\n  interval 4\n  timeout 5\n  init_fail\n}\n", slowScript(t, n, true)),
				instance(n, "VI_1", 51, 150, "  track_script {\n    chk\n  }", n.V4(100)+"/24"),
				instance(n, "VI_2", 52, 150, "", n.V4(101)+"/24"),
				fmt.Sprintf("vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n  notify \"%s\"\n}\n", n.Notify))
		},
		peer: func(n *net) string { return peer(n, "", [3]any{"VI_1", 51, 100}, [3]any{"VI_2", 52, 100}) },
		steps: []step{
			{"first run pending", nil, time.Second},
			{"first run passed", nil, 8 * time.Second},
		},
		quantum: time.Second,
	}, 160)
}
