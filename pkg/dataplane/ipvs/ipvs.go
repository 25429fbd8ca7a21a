// Package ipvs is halo's Linux IPVS data plane: it implements
// dataplane.Backend with github.com/cloudflare/ipvs (generic netlink).
//
// It behaves as keepalived's checker does towards IPVS. It installs the
// desired virtual services and changes only the difference on every Apply:
// an unchanged service or real is never written. It owns only what it
// created or adopted: a service in the kernel that the config does not name
// is left alone. A restarted halod adopts the services that match its
// config (the first Apply finds them equal and writes nothing, so traffic
// never stops), and a clean stop removes what halod owns unless KeepOnClose
// (halod --keep-dataplane) leaves it forwarding.
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"time"

	"github.com/cloudflare/ipvs"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// Options configure the backend.
type Options struct {
	// KeepOnClose leaves the installed services in the kernel when the
	// backend closes (for upgrades: the next halod adopts them).
	KeepOnClose bool
	Log         *slog.Logger
}

// Backend is the IPVS data plane.
type Backend struct {
	c    ipvs.Client
	opts Options
	log  *slog.Logger

	mu sync.Mutex
	// owned are the kernel services this backend created or adopted, with
	// the key the control plane knows each by.
	owned map[ident]dataplane.ServiceKey
	// last is the most recent desired set, by key, for read-back in the
	// control plane's terms.
	last map[dataplane.ServiceKey]*planned
}

var _ dataplane.Backend = (*Backend)(nil)

// ErrNoIPVS is wrapped by New's error when the kernel has no IPVS.
var ErrNoIPVS = errors.New("the kernel has no IPVS: module ip_vs is not loaded (modprobe ip_vs) or not built")

// New connects to the kernel's IPVS. When the IPVS netlink family is
// missing it runs `modprobe ip_vs` once, as keepalived does, and fails with
// an error that names the module if IPVS is still missing.
func New(opts Options) (*Backend, error) {
	c, err := ipvs.New()
	if err != nil {
		if modprobe("ip_vs") == nil {
			c, err = ipvs.New()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ipvs data plane: %w (%v)", ErrNoIPVS, err)
	}
	if _, err := c.Info(); err != nil {
		closeClient(c)
		return nil, fmt.Errorf("ipvs data plane: %w (%v)", ErrNoIPVS, err)
	}
	return NewWithClient(c, opts), nil
}

func modprobe(module string) error {
	path, err := exec.LookPath("modprobe")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, path, module).Run()
}

// NewWithClient returns a backend over any IPVS client; tests pass a fake.
func NewWithClient(c ipvs.Client, opts Options) *Backend {
	b := &Backend{c: c, opts: opts, log: opts.Log, owned: map[ident]dataplane.ServiceKey{},
		last: map[dataplane.ServiceKey]*planned{}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b
}

// Name implements dataplane.Backend.
func (b *Backend) Name() string { return "ipvs" }

// Close implements dataplane.Backend: it removes the services halod owns,
// unless KeepOnClose, and leaves every other service alone.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	if !b.opts.KeepOnClose {
		kern, err := b.kernelServices()
		if err != nil {
			errs = append(errs, err)
		}
		removed := 0
		for id, key := range b.owned {
			s, ok := kern[id]
			if !ok {
				continue
			}
			if err := b.c.RemoveService(s.Service); err != nil {
				errs = append(errs, fmt.Errorf("remove service %s: %w", key, err))
				continue
			}
			delete(b.owned, id)
			removed++
		}
		if removed > 0 {
			b.log.Info("removed the IPVS services halod installed", "services", removed)
		}
	} else if len(b.owned) > 0 {
		b.log.Info("leaving IPVS services in place (keep-dataplane)", "services", len(b.owned))
	}
	closeClient(b.c)
	return errors.Join(errs...)
}

func closeClient(c ipvs.Client) {
	if cl, ok := c.(io.Closer); ok {
		cl.Close()
	}
}
