package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/halo-lb/halo/pkg/control/api"
)

// writeDump is SIGUSR1: the full state as JSON, as keepalived writes
// /tmp/keepalived.data.
func (d *Daemon) writeDump() {
	path := d.o.DumpFile
	err := writeFileAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d.Dump())
	})
	if err != nil {
		d.log.Error("SIGUSR1: state dump", "file", path, "err", err)
		return
	}
	d.log.Info("SIGUSR1: state dumped", "file", path)
}

// writeStats is SIGUSR2: counters as text, as keepalived writes
// /tmp/keepalived.stats.
func (d *Daemon) writeStats() {
	path := d.o.StatsFile
	err := writeFileAtomic(path, func(w io.Writer) error { return writeStatsText(w, d.Dump()) })
	if err != nil {
		d.log.Error("SIGUSR2: statistics", "file", path, "err", err)
		return
	}
	d.log.Info("SIGUSR2: statistics written", "file", path)
}

func writeStatsText(w io.Writer, st api.Dump) error {
	p := func(f string, a ...any) { fmt.Fprintf(w, f, a...) }
	p("halod %s pid %d\n", st.Version, st.PID)
	p("Config %s: reloads %d, failed %d, last successful %v\n", st.Config.File, st.Config.Reloads, st.Config.FailedReloads,
		st.Config.LastReloadSuccessful)
	for _, in := range st.VRRP {
		p("VRRP Instance: %s\n", in.Name)
		p("  State: %s\n  Transitions: %d\n", in.State, in.Transitions)
		p("  Advertisements:\n    Received: %d\n    Sent: %d\n", in.AdvertsReceived, in.AdvertsSent)
		p("  Gratuitous sent: %d\n", in.GratuitousSent)
		p("  Packet errors:\n")
		reasons := make([]string, 0, len(in.Drops))
		for r := range in.Drops {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			p("    %s: %d\n", r, in.Drops[r])
		}
		p("  Priority: %d (effective %d)\n", in.Priority, in.EffectivePriority)
	}
	for _, vs := range st.VirtualServers {
		p("Virtual server %s: quorum %v (live weight %d of %d)\n", vs.ID, vs.QuorumUp, vs.LiveWeight, vs.Quorum)
		if vs.Counters != nil {
			p("  Packets %d Bytes %d Connections %d\n", vs.Counters.Packets, vs.Counters.Bytes, vs.Counters.Conns)
		}
		for _, r := range vs.Reals {
			state := "down"
			if r.Up {
				state = "up"
			}
			p("  Real server %s:%d %s weight %d\n", r.Address, r.Port, state, r.Weight)
			for _, c := range r.Checkers {
				p("    %s attempts %d last latency %.6fs %s\n", c.Type, c.Attempts, c.LatencySeconds, c.LastError)
			}
			if r.Counters != nil {
				p("    Packets %d Bytes %d Connections %d\n", r.Counters.Packets, r.Counters.Bytes, r.Counters.Conns)
			}
		}
	}
	keys := make([]string, 0, len(st.DataplaneVerdicts))
	for k := range st.DataplaneVerdicts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p("Data plane %s: %d\n", k, st.DataplaneVerdicts[k])
	}
	return nil
}

// writeFileAtomic writes through a temporary file in the same directory
// and renames it over path: readers never see half a dump, and a symlink
// planted at path in /tmp is replaced, not followed.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
