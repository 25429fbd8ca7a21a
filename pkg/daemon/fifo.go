package daemon

import (
	"context"
	"log/slog"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

// startFIFOScript runs a notify FIFO's script with the FIFO path as its
// last argument until ctx ends, as keepalived does; the FIFO is made first
// so the script can open it.
func startFIFOScript(ctx context.Context, f *config.FIFO, r *script.Runner, log *slog.Logger) {
	if f == nil || f.Path == "" || f.Script == nil {
		return
	}
	if err := script.MakeFIFO(f.Path, f.User, f.Group); err != nil {
		log.Error("notify fifo", "path", f.Path, "err", err)
		return
	}
	go func() {
		res, err := r.Run(ctx, f.Script, 0, f.Path)
		if ctx.Err() == nil {
			log.Warn("notify fifo script exited", "script", f.Script.Raw, "exit", res.ExitCode, "err", err)
		}
	}()
}
