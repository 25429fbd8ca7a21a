package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/halo-lb/halo/pkg/control"
	"github.com/halo-lb/halo/pkg/control/api"
)

// fake is a halod stand-in behind a real control socket.
type fake struct {
	mu     sync.Mutex
	status api.Status
	reload api.ReloadResult
	drains []api.DrainRequest
}

func (f *fake) Status() api.Status { f.mu.Lock(); defer f.mu.Unlock(); return f.status }
func (f *fake) Dump() api.Dump {
	return api.Dump{Status: f.Status(), DataplaneServices: []api.Service{{Key: "tcp:10.0.0.1:80", Counters: api.Counts{Packets: 42}}}}
}
func (f *fake) Reload() api.ReloadResult { return f.reload }
func (f *fake) SetDrain(r api.DrainRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Real != "10.0.1.1:80" {
		return errors.New("virtual server 10.0.0.1:80/tcp has no real server " + r.Real)
	}
	f.drains = append(f.drains, r)
	return nil
}

func serve(t *testing.T, f *fake) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "halod.sock")
	s, err := control.Listen(path, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path
}

func haloctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}
