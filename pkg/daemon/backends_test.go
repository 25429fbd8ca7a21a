package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/vrrp"
)

// The dataplane block's sizes and timeouts must reach the XDP backend; a
// factory that dropped them would run with defaults whatever the config says.
func TestXDPOptionsFromDataplaneBlock(t *testing.T) {
	cfg, diags := config.Load("/k.conf", config.Options{ConfigID: "x", FS: config.MapFS{"/k.conf": `
dataplane {
  backend xdp
  interface eth0
  flow_table_size 4096
  tcp_timeout 60
  tcp_fin_timeout 5
  udp_timeout 7
  syn_flood_threshold 1234
  max_services 16
  max_reals 256
}`}})
	if err := diags.Err(false); err != nil {
		t.Fatal(err)
	}
	o := xdpOptions(BackendParams{Dataplane: cfg.Dataplane, BPFFS: "/sys/fs/bpf/x", Keep: true})
	if o.FlowTableSize != 4096 || o.MaxServices != 16 || o.MaxReals != 256 || o.SYNFloodThreshold != 1234 ||
		o.TCPTimeout != 60*time.Second || o.TCPFinTimeout != 5*time.Second || o.UDPTimeout != 7*time.Second ||
		o.PinPath != "/sys/fs/bpf/x" || !o.KeepOnClose || len(o.Interfaces) != 1 || o.Interfaces[0] != "eth0" {
		t.Fatalf("options %+v", o)
	}
}

// releasingBackend records whether the daemon released or closed it.
type releasingBackend struct {
	*dataplane.Recorder
	released, closed bool
}

func (b *releasingBackend) Release() error { b.released = true; return nil }
func (b *releasingBackend) Close() error   { b.closed = true; return nil }

// A halod that fails during start-up leaves the data plane as it found it
// (an upgrade must not tear down forwarding); one that ran closes it.
func TestFailedStartReleasesDataPlane(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "k.conf")
	os.WriteFile(conf, []byte(instance), 0o600)
	load := func() (*config.Config, *config.Diags) { return config.Load(conf, config.Options{ConfigID: "x"}) }
	cfg, _ := load()
	be := &releasingBackend{Recorder: dataplane.NewRecorder()}
	fv := &fakeVRRP{cfg: &config.Config{}, runErr: fmt.Errorf("socket: operation not permitted")}
	d := New(cfg, Options{Load: load, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Backend: be,
		NewVRRP: func(*config.Config, *slog.Logger, func(string, vrrp.State)) VRRP { return fv }})
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("Run: %v", err)
	}
	if !be.released || be.closed {
		t.Fatalf("failed start: released=%v closed=%v, want released only", be.released, be.closed)
	}
}
