package config

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
)

// ScriptChecker applies keepalived's script-security rules
// (docs/keepalived.md#script-security) against the file system: without
// enable_script_security, running any existing script as root is a
// violation; with it, a script run as root must not be writable, nor sit
// in a directory writable, by anyone but root. halo runs the same check
// again before every exec (pkg/script); this one is what `halod -t` reports.
type ScriptChecker struct {
	LookPath func(string) (string, error)
	Stat     func(string) (fs.FileInfo, error)
}

// NewScriptChecker checks against the real file system.
func NewScriptChecker() *ScriptChecker {
	return &ScriptChecker{LookPath: exec.LookPath, Stat: os.Stat}
}

// allScripts lists every script the config would run.
func allScripts(c *Config) []*Script {
	var out []*Script
	add := func(ss ...*Script) {
		for _, s := range ss {
			if s != nil && len(s.Argv) > 0 {
				out = append(out, s)
			}
		}
	}
	// A vrrp_script runs only while an instance or sync group tracks it,
	// and keepalived checks only those (an unused one does not make -t exit 6).
	tracked := map[string]bool{}
	for _, in := range c.Instances {
		for _, t := range in.TrackScripts {
			tracked[t.Name] = true
		}
	}
	for _, sg := range c.SyncGroups {
		for _, t := range sg.TrackScripts {
			tracked[t.Name] = true
		}
	}
	for _, s := range c.Scripts {
		if tracked[s.Name] {
			add(s.Script)
		}
	}
	for _, in := range c.Instances {
		add(in.NotifyMaster, in.NotifyBackup, in.NotifyFault, in.NotifyStop, in.NotifyDeleted, in.Notify, in.NotifyRxLower)
	}
	for _, sg := range c.SyncGroups {
		add(sg.NotifyMaster, sg.NotifyBackup, sg.NotifyFault, sg.NotifyStop, sg.Notify)
	}
	for _, vs := range c.VirtualServers {
		add(vs.QuorumUp, vs.QuorumDown)
		for _, rs := range vs.Reals {
			add(rs.NotifyUp, rs.NotifyDown)
			for _, ch := range rs.Checkers {
				add(ch.MiscPath)
			}
		}
	}
	for _, f := range []*FIFO{c.Global.NotifyFIFO, c.Global.VRRPNotifyFIFO, c.Global.LVSNotifyFIFO} {
		if f != nil {
			add(f.Script)
		}
	}
	return out
}

// Executable resolves the file a script runs: the shell for shell lines,
// else argv[0] through PATH.
func (sc *ScriptChecker) Executable(s *Script) (string, error) {
	if s.Shell {
		return sc.LookPath("sh")
	}
	return sc.LookPath(s.Argv[0])
}

func runsAsRoot(s *Script, g *Global) bool {
	u := s.User
	if u == "" {
		u = g.ScriptUser
	}
	if u == "" {
		// keepalived's default is keepalived_script when that user exists.
		if _, err := user.Lookup("keepalived_script"); err == nil {
			return false
		}
		return true
	}
	if u == "root" || u == "0" {
		return true
	}
	return false
}

func (sc *ScriptChecker) checkConfig(c *Config, d *Diags) {
	if g := c.Global; g.ScriptUser != "" {
		// keepalived resolves script_user while parsing global_defs and warns
		// when it cannot ("Error setting global script uid/gid").
		_, errU := user.Lookup(g.ScriptUser)
		if errU != nil {
			_, errU = user.LookupId(g.ScriptUser)
		}
		var errG error
		if g.ScriptGroup != "" {
			if _, errG = user.LookupGroup(g.ScriptGroup); errG != nil {
				_, errG = user.LookupGroupId(g.ScriptGroup)
			}
		}
		if errU != nil || errG != nil {
			d.warnf(g.Pos, "Error setting global script uid/gid (script_user %s)", strings.TrimSpace(g.ScriptUser+" "+g.ScriptGroup))
		}
	}
	reported := false
	for _, s := range allScripts(c) {
		path, err := sc.Executable(s)
		if err != nil {
			// keepalived disables a script it cannot find; so do we, loudly.
			d.notef(s.Pos, "script %q not found (%v); it will fail when run", s.Argv[0], err)
			continue
		}
		if !runsAsRoot(s, &c.Global) {
			continue
		}
		if !c.Global.EnableScriptSecurity {
			if !reported {
				d.add(Security, s.Pos, "SECURITY VIOLATION - scripts are being executed but script_security not enabled")
				reported = true
			}
			continue
		}
		if err := sc.SafePath(path); err != nil {
			d.add(Security, s.Pos, "script %s: %v", s.Argv[0], err)
		}
	}
}

// SafePath reports an error when the file or any directory above it is
// writable by a non-root user (owner not root, or group/other write without
// the sticky bit on directories).
func (sc *ScriptChecker) SafePath(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err == nil {
		abs = real
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := sc.Stat(p)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			return fmt.Errorf("%s is owned by uid %d, not root", p, st.Uid)
		}
		mode := fi.Mode()
		if mode&0o022 != 0 && !(mode.IsDir() && mode&os.ModeSticky != 0) {
			return fmt.Errorf("%s is writable by non-root users (mode %v)", p, mode.Perm())
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}
