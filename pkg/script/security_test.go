package script

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

// Without script_user, scripts run as keepalived_script when it exists,
// else as root.
func TestDefaultScriptUser(t *testing.T) {
	defer func(f func(string) (*user.User, error)) { lookupUser = f }(lookupUser)
	lookupUser = func(name string) (*user.User, error) {
		if name == DefaultScriptUser {
			return &user.User{Username: name, Uid: "998", Gid: "998"}, nil
		}
		return nil, user.UnknownUserError(name)
	}
	if r := NewRunner(&config.Global{}); r.DefaultUser != DefaultScriptUser {
		t.Fatalf("default user %q, want %s", r.DefaultUser, DefaultScriptUser)
	}
	if r := NewRunner(&config.Global{ScriptUser: "nobody"}); r.DefaultUser != "nobody" {
		t.Fatalf("script_user ignored: %q", r.DefaultUser)
	}
	lookupUser = func(name string) (*user.User, error) { return nil, user.UnknownUserError(name) }
	if r := NewRunner(&config.Global{}); r.DefaultUser != "" {
		t.Fatalf("no keepalived_script: default user %q, want root", r.DefaultUser)
	}
}

// A shell-form line is checked for the script it names, not only for
// /bin/sh.
func TestShellLineChecksNamedScript(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs scripts as root")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	s := write(t, dir, "notify.sh", "exit 0\n", 0o755)
	sh := &config.Script{Raw: s.Argv[0] + " MASTER > /dev/null", Argv: []string{s.Argv[0], "MASTER", ">", "/dev/null"}, Shell: true}
	r := &Runner{Checker: config.NewScriptChecker()}
	if _, err := r.Run(context.Background(), sh, 5*time.Second); err != nil {
		t.Fatalf("safe shell line refused: %v", err)
	}
	os.Chmod(s.Argv[0], 0o777)
	if _, err := r.Run(context.Background(), sh, 5*time.Second); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("shell line naming a world-writable script ran: %v", err)
	}
}

// The notify FIFO is never followed through a symlink and must be a FIFO.
func TestFIFOMustBeAFIFO(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := writeFIFO(link, "INSTANCE \"VI_1\" MASTER 100", "", ""); !errors.Is(err, ErrNotFIFO) {
		t.Fatalf("symlink: %v", err)
	}
	WriteFIFO(link, "x", log)
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Fatalf("write went through the symlink: %q", b)
	}
	if err := writeFIFO(victim, "x", "", ""); !errors.Is(err, ErrNotFIFO) {
		t.Fatalf("regular file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs:", err)
	}
	r, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := writeFIFO(fifo, "INSTANCE \"VI_1\" MASTER 100", "", ""); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "INSTANCE \"VI_1\" MASTER 100\n" {
		t.Fatalf("read %q", buf[:n])
	}
	// A missing FIFO is created, mode 0600.
	fresh := filepath.Join(dir, "new")
	if err := writeFIFO(fresh, "x", "", ""); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(fresh); err != nil || st.Mode()&os.ModeNamedPipe == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("created %v %v", st.Mode(), err)
	}
}
