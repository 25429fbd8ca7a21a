package vrrpd

import (
	"fmt"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vrrp"
)

// group is a running sync group.
type group struct {
	cfg     *config.SyncGroup
	vg      *vrrp.Group
	members []*instance
	queue   *script.Queue
	state   vrrp.State // last state announced to the group's notify scripts
}

// maybeNotify runs the group's notify_* script, then its `notify` with
// GROUP NAME STATE 0, and writes `GROUP "NAME" STATE 0` to the FIFOs, when
// every member has reached a new common state (keepalived's
// send_group_notifies; a group's priority is always reported as 0).
func (g *group) maybeNotify(d *Daemon) {
	s, ok := g.vg.State()
	if !ok || s == g.state || s == vrrp.Init {
		return
	}
	g.notifyState(d, s)
}

// notifyState announces the group's state s.
func (g *group) notifyState(d *Daemon, s vrrp.State) {
	g.state = s
	g.queue.Script(forState(s, g.cfg.NotifyMaster, g.cfg.NotifyBackup, g.cfg.NotifyFault, g.cfg.NotifyStop))
	g.queue.Script(g.cfg.Notify, "GROUP", g.cfg.Name, s.String(), "0")
	d.fifo(fmt.Sprintf("GROUP \"%s\" %s 0", g.cfg.Name, s), d.log.With("sync_group", g.cfg.Name))
}

// releaseGroup starts the sync-group siblings of in that wait for a
// script's first result, once none does (instance.pendingScript).
func (in *instance) releaseGroup(now time.Time) {
	if in.group == nil {
		return
	}
	for _, m := range in.group.members {
		if m != in && m.m.Held() {
			m.recompute(now, true)
		}
	}
}

// buildGroups makes the running sync groups of d.cfg from the instances,
// keeping the announced state (and queue) of groups that already ran.
func (d *Daemon) buildGroups() error {
	old := map[string]*group{}
	for _, g := range d.groups {
		old[g.cfg.Name] = g
	}
	byName := map[string]*instance{}
	for _, in := range d.instances {
		byName[in.cfg.Name] = in
		in.group, in.groupIdx = nil, 0
	}
	var groups []*group
	for _, sg := range d.cfg.SyncGroups {
		grp := &group{cfg: sg, vg: &vrrp.Group{Name: sg.Name}}
		if o := old[sg.Name]; o != nil {
			grp.queue, grp.state = o.queue, o.state
			delete(old, sg.Name)
		} else {
			grp.queue = script.NewQueue(d.runner, d.log.With("sync_group", sg.Name), d.notifyTimeout())
		}
		for _, name := range sg.Members {
			in := byName[name]
			if in == nil {
				return fmt.Errorf("sync group %s: unknown instance %s", sg.Name, name)
			}
			in.group, in.groupIdx = grp, len(grp.members)
			grp.members = append(grp.members, in)
			grp.vg.Members = append(grp.vg.Members, in.m)
			grp.vg.Names = append(grp.vg.Names, name)
		}
		groups = append(groups, grp)
	}
	for _, o := range old {
		q := o.queue
		go func() { q.Drain(d.notifyTimeout()); q.Close() }()
	}
	d.groups = groups
	return nil
}
