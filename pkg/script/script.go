// Package script runs the commands a config names (notify, track and check
// scripts): without a shell unless the command line needs one, as the
// configured user, in its own process group that is killed on timeout, and
// only after the script-security check passes at every exec (keepalived
// checks once at start; a file can become unsafe later).
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/halo-lb/halo/pkg/config"
)

// Runner runs scripts with the global settings of a config.
type Runner struct {
	// Security is enable_script_security. halo refuses root scripts that
	// non-root users could modify whether or not it is set (keepalived
	// only refuses with it); it is kept for status and -t.
	Security    bool
	DefaultUser string // script_user
	DefaultGrp  string
	Checker     *config.ScriptChecker
}

// DefaultScriptUser is the user keepalived runs scripts as when
// script_user is not set and the user exists.
const DefaultScriptUser = "keepalived_script"

// lookupUser is user.Lookup, replaced in tests.
var lookupUser = user.Lookup

var rootWarning sync.Once

// NewRunner takes the script settings from global_defs. Without
// script_user, scripts run as keepalived_script when that user exists,
// else as root with the warning keepalived gives.
func NewRunner(g *config.Global) *Runner {
	r := &Runner{Security: g.EnableScriptSecurity, DefaultUser: g.ScriptUser, DefaultGrp: g.ScriptGroup,
		Checker: config.NewScriptChecker()}
	if r.DefaultUser == "" {
		if _, err := lookupUser(DefaultScriptUser); err == nil {
			r.DefaultUser = DefaultScriptUser
		} else {
			rootWarning.Do(func() {
				slog.Warn("WARNING - default user '" + DefaultScriptUser + "' for script execution does not exist - please create.")
			})
		}
	}
	return r
}

// Result is how a run ended.
type Result struct {
	ExitCode int // -1 when killed or not started
	TimedOut bool
	Output   []byte // combined stdout and stderr, truncated to 4 KiB
	Duration time.Duration
}

// ErrUnsafe is returned when script security refuses to run a script.
var ErrUnsafe = errors.New("script security")

// Command builds the exec.Cmd for s with extra arguments appended (notify's
// TYPE NAME STATE PRIORITY).
func (r *Runner) Command(ctx context.Context, s *config.Script, extra ...string) (*exec.Cmd, error) {
	if s == nil || len(s.Argv) == 0 {
		return nil, errors.New("empty script")
	}
	var cmd *exec.Cmd
	if s.Shell {
		line := s.Raw
		for _, e := range extra {
			line += " " + shellQuote(e)
		}
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", line)
	} else {
		cmd = exec.CommandContext(ctx, s.Argv[0], append(append([]string(nil), s.Argv[1:]...), extra...)...)
	}
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	uname, gname := s.User, s.Group
	if uname == "" {
		uname, gname = r.DefaultUser, r.DefaultGrp
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	root := true
	if uname != "" && uname != "root" {
		cred, err := credential(uname, gname)
		if err != nil {
			return nil, err
		}
		attr.Credential = cred
		root = cred.Uid == 0
	}
	cmd.SysProcAttr = attr
	if root && r.Checker != nil {
		if err := r.Checker.SafePath(cmd.Path); err != nil {
			return nil, fmt.Errorf("%w: refusing to run %s as root: %v", ErrUnsafe, cmd.Path, err)
		}
		if s.Shell {
			// `sh -c LINE`: /bin/sh is safe, but the script the line
			// names is what runs; check it too.
			if named := namedScript(s.Argv); named != "" {
				if err := r.Checker.SafePath(named); err != nil {
					return nil, fmt.Errorf("%w: refusing to run %s as root: %v", ErrUnsafe, named, err)
				}
			}
		}
	}
	// Kill the whole process group, not just the leader, when ctx ends.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd, nil
}

// namedScript is the program a shell-form line starts: its first word,
// looked up in PATH unless it is a path; "" for shell builtins and words
// that name no file.
func namedScript(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	w := argv[0]
	if strings.ContainsRune(w, '/') {
		if _, err := os.Stat(w); err == nil {
			return w
		}
		return ""
	}
	if p, err := exec.LookPath(w); err == nil {
		return p
	}
	return ""
}

func credential(uname, gname string) (*syscall.Credential, error) {
	u, err := user.Lookup(uname)
	if err != nil {
		return nil, fmt.Errorf("script user %q: %w", uname, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if gname != "" {
		g, err := user.LookupGroup(gname)
		if err != nil {
			return nil, fmt.Errorf("script group %q: %w", gname, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func shellQuote(s string) string {
	return "'" + string(bytes.ReplaceAll([]byte(s), []byte("'"), []byte(`'\''`))) + "'"
}

// Run runs s to completion or until timeout (0: none) and reports how it
// ended. An error means it could not be started (not found, unsafe, bad
// user); a non-zero exit is not an error.
func (r *Runner) Run(ctx context.Context, s *config.Script, timeout time.Duration, extra ...string) (Result, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd, err := r.Command(ctx, s, extra...)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	out := &limitedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	res := Result{ExitCode: -1, Output: out.b.Bytes(), Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() == context.DeadlineExceeded {
		res.TimedOut = true
		res.ExitCode = -1
		return res, nil
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, err
	}
	return res, nil
}

type limitedBuffer struct {
	b   bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}
