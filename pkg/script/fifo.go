package script

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// WriteFIFO writes one line to a notify FIFO (keepalived's notify_fifo,
// vrrp_notify_fifo, lvs_notify_fifo), creating the FIFO if needed. It never
// blocks: with no reader, or a full pipe, the line is dropped and logged.
func WriteFIFO(path, line string, log *slog.Logger) { WriteFIFOAs(path, line, "", "", log) }

// WriteFIFOAs is WriteFIFO for a FIFO created owned by user and group
// (keepalived's `notify_fifo PATH [user [group]]`).
//
// The path is opened with O_NOFOLLOW and must be a FIFO: halod runs as
// root, and a symlink or regular file planted where the FIFO should be
// must not make it write somewhere else.
func WriteFIFOAs(path, line, owner, group string, log *slog.Logger) {
	if err := writeFIFO(path, line, owner, group); err != nil {
		log.Warn("notify fifo", "path", path, "err", err)
	}
}

// ErrNotFIFO is returned when the notify FIFO path holds something else.
var ErrNotFIFO = errors.New("not a FIFO")

// MakeFIFO creates the FIFO at path (mode 0600, owned by owner and group
// when given) unless something is there already.
func MakeFIFO(path, owner, group string) error {
	if err := syscall.Mkfifo(path, 0o600); err == nil {
		return chownFIFO(path, owner, group)
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

func writeFIFO(path, line, owner, group string) error {
	if err := MakeFIFO(path, owner, group); err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return fmt.Errorf("%w: %s is a symbolic link", ErrNotFIFO, path)
		}
		return fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeNamedPipe == 0 {
		return fmt.Errorf("%w: %s is %v", ErrNotFIFO, path, st.Mode().Type())
	}
	if _, err := f.WriteString(strings.TrimRight(line, "\n") + "\n"); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func chownFIFO(path, owner, group string) error {
	if owner == "" {
		return nil
	}
	u, err := user.Lookup(owner)
	if err != nil {
		return fmt.Errorf("fifo user %q: %w", owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("fifo group %q: %w", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return unix.Lchown(path, uid, gid)
}
