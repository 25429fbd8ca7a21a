package vrrp

import (
	"fmt"
	"time"
)

// Group makes the instances of a vrrp_sync_group move together, as
// keepalived does: when one becomes MASTER the others follow, when one
// leaves MASTER for BACKUP the others step down, and when one enters FAULT
// the whole group goes to FAULT until every member's own trackers are up
// again.
type Group struct {
	Name    string
	Members []*Machine
	Names   []string
}

// Follow takes the actions one member (index i) produced and returns the
// actions each other member must now run, keyed by index.
func (g *Group) Follow(now time.Time, i int, acts []Action) map[int][]Action {
	out := map[int][]Action{}
	for _, a := range acts {
		if a.Kind != Transition {
			continue
		}
		reason := fmt.Sprintf("sync group %s: %s went %s", g.Name, g.Names[i], a.To)
		for j, m := range g.Members {
			if j == i {
				continue
			}
			var more []Action
			switch a.To {
			case Master:
				more = m.ForceMaster(now, reason)
			case Backup:
				if a.From == Master {
					more = m.ForceBackup(now, reason)
				}
			}
			out[j] = append(out[j], more...)
		}
	}
	// A member is held in FAULT while any other member's own trackers are
	// down; it leaves FAULT when none is.
	for j, m := range g.Members {
		var culprit string
		for k, o := range g.Members {
			if k != j && o.OwnFault() {
				culprit = g.Names[k]
				break
			}
		}
		reason := fmt.Sprintf("sync group %s: %s is in FAULT", g.Name, culprit)
		if culprit == "" {
			reason = fmt.Sprintf("sync group %s: no member in FAULT", g.Name)
		}
		out[j] = append(out[j], m.SetGroupFault(now, culprit != "", reason)...)
	}
	return out
}

// State is the group's state as keepalived reports it to the group's
// notify scripts: the state every member shares, or ok=false while they
// still differ.
func (g *Group) State() (s State, ok bool) {
	if len(g.Members) == 0 {
		return Init, false
	}
	s = g.Members[0].State()
	for _, m := range g.Members[1:] {
		if m.State() != s {
			return s, false
		}
	}
	return s, true
}
