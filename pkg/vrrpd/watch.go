package vrrpd

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/track"
)

// watcher is one running tracker feed (a vrrp_script, a track_file, the
// link watcher) with the definition it was started from, so a reload
// restarts only the feeds whose definition changed and an unchanged
// script keeps its rise/fall state.
type watcher struct {
	cancel context.CancelFunc
	def    any
}

// syncWatchers starts the feeds the instances now need, stops those no
// longer needed and restarts those whose definition changed.
func (d *Daemon) syncWatchers() error {
	want := map[string]any{}
	scripts := map[string]*config.VRRPScript{}
	for _, s := range d.cfg.Scripts {
		scripts[s.Name] = s
	}
	files := map[string]*config.TrackFile{}
	for _, tf := range d.cfg.TrackFiles {
		files[tf.Name] = tf
	}
	var links []string
	for _, in := range d.instances {
		for _, k := range in.order {
			it := in.trackers[k]
			switch {
			case k == "script/"+it.Name && scripts[it.Name] != nil:
				want[k] = *scripts[it.Name]
			case k == "file/"+it.Name && files[it.Name] != nil:
				want[k] = *files[it.Name]
			case k == "interface/"+it.Name || k == bindKey+it.Name:
				links = append(links, it.Name)
			}
		}
		links = append(links, in.cfg.Interface, in.ifname)
	}
	slices.Sort(links)
	links = slices.Compact(links)
	want["links"] = links
	for k, w := range d.watchers {
		if def, ok := want[k]; !ok || !reflect.DeepEqual(stripPos(def), stripPos(w.def)) {
			w.cancel()
			delete(d.watchers, k)
		}
	}
	for k, def := range want {
		if d.watchers[k] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(d.wctx)
		d.watchers[k] = &watcher{cancel: cancel, def: def}
		switch def := def.(type) {
		case config.VRRPScript:
			name := def.Name
			go track.WatchScript(ctx, d.runner, &def, func(ok bool) {
				d.post(ctx, event{kind: evScript, name: name, ok: ok})
			})
		case config.TrackFile:
			name := def.Name
			go track.WatchFile(ctx, &def, func(v int) {
				d.post(ctx, event{kind: evFile, name: name, value: v})
			})
		case []string:
			if len(def) == 0 {
				continue
			}
			if err := track.WatchLinks(ctx, def, func(name string, up bool) {
				d.post(ctx, event{kind: evLink, name: name, ok: up})
			}); err != nil {
				cancel()
				delete(d.watchers, k)
				return fmt.Errorf("watch interfaces: %w", err)
			}
		}
	}
	return nil
}

func (d *Daemon) stopWatchers() {
	for k, w := range d.watchers {
		w.cancel()
		delete(d.watchers, k)
	}
}

// stripPos drops source positions, which move when unrelated lines of the
// config change.
func stripPos(v any) any {
	switch v := v.(type) {
	case config.VRRPScript:
		v.Pos = config.Pos{}
		if v.Script != nil {
			s := *v.Script
			s.Pos = config.Pos{}
			v.Script = &s
		}
		return v
	case config.TrackFile:
		v.Pos = config.Pos{}
		return v
	}
	return v
}
