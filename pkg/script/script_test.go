package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

func write(t *testing.T, dir, name, body string, mode os.FileMode) *config.Script {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return &config.Script{Raw: p, Argv: []string{p}}
}

func TestRunWithoutShellAndWithArguments(t *testing.T) {
	dir := t.TempDir()
	s := write(t, dir, "echo.sh", `printf '%s|' "$@"`+"\n", 0o755)
	s.Argv = append(s.Argv, "a b", "c")
	res, err := (&Runner{}).Run(context.Background(), s, time.Second, "INSTANCE", "VI_1", "MASTER", "100")
	if err != nil || res.ExitCode != 0 {
		t.Fatal(err, res)
	}
	if got := string(res.Output); got != "a b|c|INSTANCE|VI_1|MASTER|100|" {
		t.Fatalf("argv %q", got)
	}
	// A shell line gets its extra arguments quoted.
	sh := &config.Script{Raw: `echo "$0" >/dev/null; printf '%s|' x`, Argv: []string{"echo"}, Shell: true}
	res, err = (&Runner{}).Run(context.Background(), sh, time.Second, "it's")
	if err != nil || !strings.HasPrefix(string(res.Output), "x|it's|") {
		t.Fatalf("shell: %q %v", res.Output, err)
	}
}

// A root script that others can write is refused at exec time, whenever it
// became unsafe, with or without enable_script_security.
func TestSecurityCheckedAtEveryExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs scripts as root")
	}
	dir := t.TempDir()
	s := write(t, dir, "ok.sh", "exit 0\n", 0o755)
	r := &Runner{Checker: config.NewScriptChecker()}
	if _, err := r.Run(context.Background(), s, time.Second); err != nil {
		t.Fatalf("safe script refused: %v", err)
	}
	os.Chmod(s.Argv[0], 0o777)
	if _, err := r.Run(context.Background(), s, time.Second); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("world-writable script ran: %v", err)
	}
}

func TestTimeoutKills(t *testing.T) {
	s := write(t, t.TempDir(), "slow.sh", "sleep 30\n", 0o755)
	start := time.Now()
	res, err := (&Runner{}).Run(context.Background(), s, 200*time.Millisecond)
	if err != nil || !res.TimedOut || time.Since(start) > 5*time.Second {
		t.Fatalf("%+v %v after %v", res, err, time.Since(start))
	}
}

// Jobs run one at a time in queue order, even when the first is slow.
func TestQueueOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	s := write(t, dir, "n.sh", fmt.Sprintf("echo begin $1 >> %s\nsleep 0.$2\necho end $1 >> %s\n", log, log), 0o755)
	q := NewQueue(&Runner{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 0)
	defer q.Close()
	for i, d := range []string{"3", "0", "2", "1"} {
		q.Script(s, fmt.Sprint(i), d)
	}
	var marks []string
	q.Func(func() { marks = append(marks, "func") })
	if !q.Drain(10 * time.Second) {
		t.Fatal("queue did not drain")
	}
	b, _ := os.ReadFile(log)
	want := "begin 0\nend 0\nbegin 1\nend 1\nbegin 2\nend 2\nbegin 3\nend 3\n"
	if string(b) != want || len(marks) != 1 {
		t.Fatalf("ran:\n%s", b)
	}
}

// A hung notify script is killed after the queue's timeout and the next
// one still runs.
func TestQueueKillsHungScript(t *testing.T) {
	dir := t.TempDir()
	hung := write(t, dir, "hung.sh", "sleep 30\n", 0o755)
	mark := filepath.Join(dir, "ran")
	next := write(t, dir, "next.sh", "touch "+mark+"\n", 0o755)
	q := NewQueue(&Runner{}, slog.New(slog.NewTextHandler(io.Discard, nil)), 300*time.Millisecond)
	defer q.Close()
	start := time.Now()
	q.Script(hung)
	q.Script(next)
	if !q.Drain(10 * time.Second) {
		t.Fatal("queue stuck behind a hung script")
	}
	if _, err := os.Stat(mark); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("next script ran: %v, after %v", err, time.Since(start))
	}
}
