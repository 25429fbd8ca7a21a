package track

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

// WatchScript runs a vrrp_script every interval until ctx ends and calls
// report with its status: once at start (OK unless init_fail), then on every
// change after rise/fall. A run that overruns its timeout is a failure.
func WatchScript(ctx context.Context, r *script.Runner, s *config.VRRPScript, report func(ok bool)) {
	h := NewHysteresis(s.Rise, s.Fall, s.InitFail)
	report(h.OK())
	t := time.NewTicker(s.Interval.D())
	defer t.Stop()
	for {
		res, err := r.Run(ctx, s.Script, s.Timeout.D())
		if ctx.Err() != nil {
			return
		}
		ok := err == nil && !res.TimedOut && res.ExitCode == 0
		if h.Add(ok) {
			report(h.OK())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LinkUp reports whether a link is administratively and operationally up.
func LinkUp(l netlink.Link) bool {
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 {
		return false
	}
	return a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown
}

// WatchLinks reports the state of the named interfaces now and on every
// change, from netlink link notifications (no polling). A deleted link is
// down.
func WatchLinks(ctx context.Context, names []string, report func(name string, up bool)) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	ch := make(chan netlink.LinkUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(ch, ctx.Done(), netlink.LinkSubscribeOptions{ListExisting: true}); err != nil {
		return err
	}
	last := map[string]bool{}
	// Interfaces that do not exist at all are down.
	for n := range want {
		if _, err := netlink.LinkByName(n); err != nil {
			last[n] = false
			report(n, false)
		}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				name := u.Link.Attrs().Name
				if !want[name] {
					continue
				}
				up := LinkUp(u.Link) && u.Header.Type != 17 // RTM_DELLINK
				if prev, ok := last[name]; ok && prev == up {
					continue
				}
				last[name] = up
				report(name, up)
			}
		}
	}()
	return nil
}

// WatchFile polls a track_file once a second and reports its integer value
// when it changes. A missing or unreadable file counts as init (init_file),
// or 0.
func WatchFile(ctx context.Context, tf *config.TrackFile, report func(value int)) {
	last, first := 0, true
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		v := 0
		if tf.InitVal != nil {
			v = *tf.InitVal
		}
		if b, err := os.ReadFile(tf.File); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil {
				v = n
			}
		}
		if first || v != last {
			report(v)
			last, first = v, false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
