package script

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
)

// WriteFIFO writes one line to a notify FIFO (keepalived's notify_fifo,
// vrrp_notify_fifo, lvs_notify_fifo), creating the FIFO if needed. It never
// blocks: with no reader, or a full pipe, the line is dropped and logged.
// Callers run it through a Queue so lines keep their order.
func WriteFIFO(path, line string, log *slog.Logger) {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			log.Warn("create notify fifo", "path", path, "err", err)
			return
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		log.Warn("open notify fifo", "path", path, "err", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(strings.TrimRight(line, "\n") + "\n"); err != nil {
		log.Warn("write notify fifo", "path", path, "err", err)
	}
}
