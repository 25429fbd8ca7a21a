package vrrp

import (
	"fmt"
	"time"
)

// Group makes the instances of a vrrp_sync_group move together: when one
// becomes MASTER the others follow, when one leaves MASTER for BACKUP the
// others step down, and while any is in FAULT none may be MASTER.
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
	anyFault := false
	for _, m := range g.Members {
		if m.State() == Fault {
			anyFault = true
		}
	}
	for j, m := range g.Members {
		if m.State() != Fault {
			out[j] = append(out[j], m.SetHold(now, anyFault, fmt.Sprintf("sync group %s: a member is in FAULT", g.Name))...)
		}
	}
	return out
}
