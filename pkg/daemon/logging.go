package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
)

// LogOptions choose halod's log output.
type LogOptions struct {
	Format string // text (default) or json
	Syslog bool   // also send every record to the local syslog (daemon facility)
	Debug  bool
}

// NewLogger builds the logger: slog text or JSON on w, and, with Syslog,
// the same records to syslog for hosts that collect it. The closer
// releases the syslog connection.
func NewLogger(w io.Writer, o LogOptions) (*slog.Logger, io.Closer, error) {
	level := slog.LevelInfo
	if o.Debug {
		level = slog.LevelDebug
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.Format {
	case "", "text":
		h = slog.NewTextHandler(w, hopts)
	case "json":
		h = slog.NewJSONHandler(w, hopts)
	default:
		return nil, nil, fmt.Errorf("log format %q: want text or json", o.Format)
	}
	if !o.Syslog {
		return slog.New(h), io.NopCloser(nil), nil
	}
	sw, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "halod")
	if err != nil {
		return nil, nil, fmt.Errorf("syslog: %w", err)
	}
	// syslog stamps time and program itself; each record is one message.
	sh := slog.NewTextHandler(sw, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	return slog.New(fanout{h, sh}), sw, nil
}

// fanout sends each record to every handler.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var first error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func (f fanout) WithAttrs(a []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(a)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
