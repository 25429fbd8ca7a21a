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
	"sync"
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

// LinkState is one link's state as a subscription reports it.
type LinkState struct {
	Name string
	Up   bool // administratively and operationally up, and not deleted
}

// LinkSubscriber starts a subscription to link changes: it first reports
// every existing link, then each change, until done closes or the
// subscription fails; either way the channel is then closed.
type LinkSubscriber func(done <-chan struct{}) (<-chan LinkState, error)

// LinkWatcher follows the up/down state of named links. The zero value
// uses rtnetlink; tests inject Subscribe and Exists.
type LinkWatcher struct {
	Subscribe LinkSubscriber
	// Exists reports whether a link of that name exists now; links deleted
	// while no subscription was running are found with it.
	Exists func(name string) bool
	// Retry is the first wait before subscribing again (doubling up to
	// MaxRetry); 0 means 100 ms.
	Retry time.Duration
	Log   *slog.Logger
}

// MaxRetry bounds the wait between two attempts to subscribe again.
const MaxRetry = 5 * time.Second

// WatchLinks reports the state of the named interfaces now and on every
// change, from netlink link notifications (no polling). A deleted link is
// down.
func WatchLinks(ctx context.Context, names []string, report func(name string, up bool)) error {
	return (&LinkWatcher{}).Watch(ctx, names, report)
}

// Watch reports the state of the named links now and on every change until
// ctx ends. When the subscription fails (ENOBUFS: the kernel dropped
// notifications because the socket's buffer overflowed) it subscribes
// again, with backoff, and re-reads the current state — the new
// subscription lists every link, and links that vanished meanwhile are
// looked up — so a change made while notifications were lost is still
// reported, and nothing is reported twice.
func (w *LinkWatcher) Watch(ctx context.Context, names []string, report func(name string, up bool)) error {
	sub, exists, log := w.Subscribe, w.Exists, w.Log
	if sub == nil {
		sub = netlinkLinks
	}
	if exists == nil {
		exists = func(name string) bool { _, err := netlink.LinkByName(name); return err == nil }
	}
	if log == nil {
		log = slog.Default()
	}
	retry := w.Retry
	if retry <= 0 {
		retry = 100 * time.Millisecond
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	ch, err := sub(ctx.Done())
	if err != nil {
		return err
	}
	last := map[string]bool{}
	// Interfaces that do not exist at all are down.
	for n := range want {
		if !exists(n) {
			last[n] = false
			report(n, false)
		}
	}
	set := func(name string, up bool) {
		if prev, ok := last[name]; ok && prev == up {
			return
		}
		last[name] = up
		report(name, up)
	}
	go func() {
		for {
			for st := range ch {
				if want[st.Name] {
					set(st.Name, st.Up)
				}
			}
			// The channel closed: ctx ended, or the subscription failed.
			if ctx.Err() != nil {
				return
			}
			log.Warn("link watcher: netlink subscription lost, subscribing again")
			delay := retry
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(delay):
				}
				if ch, err = sub(ctx.Done()); err == nil {
					break
				}
				log.Warn("link watcher: resubscribe", "err", err, "retry_in", min(2*delay, MaxRetry))
				delay = min(2*delay, MaxRetry)
			}
			// Links deleted while unsubscribed are not in the new
			// listing: look them up.
			for n := range want {
				if last[n] && !exists(n) {
					set(n, false)
				}
			}
		}
	}()
	return nil
}

// netlinkLinks subscribes to rtnetlink link notifications. Each
// subscription has its own socket, closed when it fails or done closes
// (netlink leaves a failed subscription's socket open until done).
func netlinkLinks(done <-chan struct{}) (<-chan LinkState, error) {
	stop := make(chan struct{})
	var once sync.Once
	closeStop := func() { once.Do(func() { close(stop) }) }
	raw := make(chan netlink.LinkUpdate, 256)
	err := netlink.LinkSubscribeWithOptions(raw, stop, netlink.LinkSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-done:
			default:
				slog.Warn("link watcher: netlink error", "err", err)
			}
		},
	})
	if err != nil {
		closeStop()
		return nil, err
	}
	out := make(chan LinkState, 256)
	go func() {
		defer close(out)
		defer func() {
			closeStop()
			for range raw { // let netlink's reader finish and close raw
			}
		}()
		for {
			select {
			case u, ok := <-raw:
				if !ok {
					return
				}
				st := LinkState{Name: u.Link.Attrs().Name, Up: LinkUp(u.Link) && u.Header.Type != unix.RTM_DELLINK}
				select {
				case out <- st:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	return out, nil
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
