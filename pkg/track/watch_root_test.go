package track

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// syncWriter lets the test read what the watcher logged while it runs.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// A real ENOBUFS: while the consumer is stalled, thousands of link
// notifications overflow the subscription's socket and the kernel drops
// some — among them the one that took the watched link down. The watcher
// must subscribe again and report the link down anyway.
func TestWatchLinksSurvivesENOBUFS(t *testing.T) {
	lab.RequireRoot(t)
	name := fmt.Sprintf("halo-trk-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	// veth: this kernel may lack the dummy driver.
	ip("link", "add", "watched0", "type", "veth", "peer", "name", "watched1")
	ip("link", "set", "watched1", "up")
	ip("link", "set", "watched0", "up")
	inNS := func(f func()) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		f()
		if err := netns.Set(orig); err != nil {
			panic(err) // never hand a thread in the wrong namespace back
		}
	}
	logs := &syncWriter{}
	w := &LinkWatcher{
		Subscribe: func(done <-chan struct{}) (ch <-chan LinkState, err error) {
			inNS(func() { ch, err = netlinkLinks(done) })
			return ch, err
		},
		Exists: func(n string) bool { _, err := h.LinkByName(n); return err == nil },
		Retry:  10 * time.Millisecond,
		Log:    slog.New(slog.NewTextHandler(logs, nil)),
	}
	stall := make(chan struct{})
	var mu sync.Mutex
	var last *bool
	reports := 0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err = w.Watch(ctx, []string{"watched0"}, func(n string, up bool) {
		<-stall
		mu.Lock()
		last = &up
		reports++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	// With the consumer stalled, flood the socket, then take the watched
	// link down in the middle of the flood, and flood again.
	var batch strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&batch, "link add d%d type veth peer name e%d\nlink set d%d up\n", i, i, i)
	}
	batch.WriteString("link set watched0 down\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&batch, "link set d%d down\nlink del d%d\n", i, i)
	}
	cmd := exec.Command("ip", "-n", name, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	close(stall)
	ok := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		ok = last != nil && !*last
		mu.Unlock()
		if ok {
			break
		}
	}
	if !strings.Contains(logs.String(), "subscription lost") {
		t.Skipf("the flood did not overflow the socket on this machine (no ENOBUFS); nothing to test:\n%s", logs.String())
	}
	if !ok {
		t.Fatalf("watched0 went down during the overflow but the watcher never reported it (reports %d)\nlog:\n%s", reports, logs.String())
	}
	// And it still follows changes afterwards.
	ip("link", "set", "watched0", "up")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		ok = last != nil && *last
		mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatalf("watched0 up after the resubscribe never reported\nlog:\n%s", logs.String())
}
