package track

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

// WatchScript runs a vrrp_script every interval until ctx ends and calls
// report with its status: after the first run (until then the tracker is
// unknown and moves nothing, as in keepalived, where a weight is applied
// only once the script has reported), then on every change after
// rise/fall. A run that overruns its timeout is a failure.
func WatchScript(ctx context.Context, r *script.Runner, s *config.VRRPScript, report func(ok bool)) {
	h := NewHysteresis(s.Rise, s.Fall, s.InitFail)
	t := time.NewTicker(s.Interval.D())
	defer t.Stop()
	for first := true; ; first = false {
		res, err := r.Run(ctx, s.Script, s.Timeout.D())
		if ctx.Err() != nil {
			return
		}
		ok := err == nil && !res.TimedOut && res.ExitCode == 0
		if h.Add(ok) || first {
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
// down. When the subscription fails (ENOBUFS after a burst of events), it
// subscribes again and reports what changed meanwhile, instead of going
// silent.
func WatchLinks(ctx context.Context, names []string, report func(name string, up bool)) error {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	ch, err := subscribeLinks(ctx)
	if err != nil {
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
			for u := range ch {
				name := u.Link.Attrs().Name
				if !want[name] {
					continue
				}
				up := LinkUp(u.Link) && u.Header.Type != unix.RTM_DELLINK
				if prev, ok := last[name]; ok && prev == up {
					continue
				}
				last[name] = up
				report(name, up)
			}
			// The channel closed: ctx ended, or netlink reported an
			// error and dropped the subscription.
			for {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
				if ch, err = subscribeLinks(ctx); err == nil {
					break
				}
				slog.Warn("link watcher: resubscribe", "err", err)
			}
			// Links deleted while unsubscribed send nothing on relisting.
			for n := range want {
				if _, err := netlink.LinkByName(n); err != nil && last[n] {
					last[n] = false
					report(n, false)
				}
			}
		}
	}()
	return nil
}

func subscribeLinks(ctx context.Context) (chan netlink.LinkUpdate, error) {
	ch := make(chan netlink.LinkUpdate, 256)
	err := netlink.LinkSubscribeWithOptions(ch, ctx.Done(), netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			if ctx.Err() == nil {
				slog.Warn("link watcher: netlink error, subscribing again", "err", err)
			}
		},
	})
	return ch, err
}

// MaxTrackFile bounds what is read of a track file: the number is on its
// first line.
const MaxTrackFile = 4096

// ErrNotRegular is returned for a track file that is not a regular file
// (a FIFO or device there would block or feed endless data).
var ErrNotRegular = errors.New("not a regular file")

// ReadTrackFile reads the integer on the first line of a track file. The
// file must be a regular file; at most MaxTrackFile bytes are read, within
// timeout (a file on a hung network mount must not stall tracking).
func ReadTrackFile(path string, timeout time.Duration) (int, error) {
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		n, err := readTrackFile(path)
		ch <- result{n, err}
	}()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-time.After(timeout):
		return 0, fmt.Errorf("track file %s: read timed out after %v", path, timeout)
	}
}

func readTrackFile(path string) (int, error) {
	// O_NONBLOCK: opening a FIFO planted there must not block.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("track file %s: %w", path, ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxTrackFile))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
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
		if n, err := ReadTrackFile(tf.File, time.Second); err == nil {
			v = n
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
