package track

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeLinks plays a sequence of subscriptions: each step is either an
// error from Subscribe or a subscription that reports states and then
// fails (closes) or stays open.
type fakeLinks struct {
	mu     sync.Mutex
	steps  []fakeSub
	calls  int
	exists map[string]bool
}

type fakeSub struct {
	err    error
	states []LinkState
	open   bool // stays open (until done) after its states
}

func (f *fakeLinks) subscribe(done <-chan struct{}) (<-chan LinkState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls >= len(f.steps) {
		return nil, errors.New("no more subscriptions in the script")
	}
	s := f.steps[f.calls]
	f.calls++
	if s.err != nil {
		return nil, s.err
	}
	ch := make(chan LinkState, len(s.states))
	for _, st := range s.states {
		ch <- st
	}
	if !s.open {
		close(ch) // the subscription fails, as netlink's reader does on ENOBUFS
		return ch, nil
	}
	go func() { <-done; close(ch) }()
	return ch, nil
}

func (f *fakeLinks) exist(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exists[name]
}

// After the subscription fails (ENOBUFS) and one resubscribe attempt fails
// too, the watcher subscribes again and re-reads the state: a link that
// went down while no notification arrived is reported down, a link deleted
// meanwhile is reported down, and later changes still arrive.
func TestWatchLinksResubscribesAfterError(t *testing.T) {
	f := &fakeLinks{exists: map[string]bool{"eth0": true, "eth1": true}}
	f.steps = []fakeSub{
		// Listing: both up; then the socket overflows.
		{states: []LinkState{{"eth0", true}, {"eth1", true}, {"other", false}}},
		{err: errors.New("netlink: no buffer space available")},
		// Relisting after the gap: eth0 is down now, eth1 is gone (not
		// listed); then a live change brings eth0 back.
		{states: []LinkState{{"eth0", false}, {"eth0", true}}, open: true},
	}
	got := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &LinkWatcher{Subscribe: f.subscribe, Exists: f.exist, Retry: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// eth1 is deleted right after it is reported up, before the
	// subscription dies: no notification of it will ever arrive.
	if err := w.Watch(ctx, []string{"eth0", "eth1"}, func(name string, up bool) {
		if name == "eth1" && up {
			f.mu.Lock()
			f.exists["eth1"] = false
			f.mu.Unlock()
		}
		got <- fmt.Sprintf("%s %v", name, up)
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"eth0 true", "eth1 true", "eth1 false", "eth0 false", "eth0 true"}
	for i, w := range want {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("report %d: %q, want %q", i, g, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("report %d (%q) never came: the watcher stopped after the error", i, w)
		}
	}
	select {
	case g := <-got:
		t.Fatalf("unexpected report %q (a state reported twice?)", g)
	case <-time.After(50 * time.Millisecond):
	}
	if f.calls != 3 {
		t.Fatalf("%d subscriptions, want 3 (first, failed retry, working one)", f.calls)
	}
}

// A link missing at start is reported down at once; cancelling the
// context stops the watcher without resubscribing.
func TestWatchLinksMissingAndStop(t *testing.T) {
	f := &fakeLinks{exists: map[string]bool{}, steps: []fakeSub{{open: true}}}
	got := make(chan string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	w := &LinkWatcher{Subscribe: f.subscribe, Exists: f.exist, Retry: time.Millisecond}
	if err := w.Watch(ctx, []string{"gone0"}, func(name string, up bool) { got <- fmt.Sprintf("%s %v", name, up) }); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "gone0 false" {
		t.Fatalf("%q", g)
	}
	cancel()
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls != 1 {
		t.Fatalf("%d subscriptions after cancel, want 1", f.calls)
	}
}

// A subscription that cannot start at all is an error for the caller.
func TestWatchLinksSubscribeError(t *testing.T) {
	f := &fakeLinks{steps: []fakeSub{{err: errors.New("EPERM")}}}
	w := &LinkWatcher{Subscribe: f.subscribe, Exists: f.exist}
	if err := w.Watch(context.Background(), []string{"eth0"}, func(string, bool) {}); err == nil {
		t.Fatal("no error")
	}
}
