package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/vrrpd"
)

// daemon runs the configured instances in the foreground until SIGTERM or
// SIGINT, then stops them the way keepalived does.
func daemon(cfg *config.Config, o *options, stderr io.Writer) int {
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("halod starting", "version", version, "config", o.configFile, "instances", len(cfg.Instances),
		"virtual_servers", len(cfg.VirtualServers), "dataplane", cfg.Dataplane.Backend)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	v := vrrpd.New(cfg, log)
	if err := v.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "halod:", err)
		return 1
	}
	log.Info("halod stopped")
	return 0
}
