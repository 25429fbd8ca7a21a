package caps

import (
	"os/user"
	"reflect"

	"github.com/halo-lb/halo/pkg/config"
)

// NeedsOf reads what a configuration asks of the process: its scripts and
// whom they run as, and a BGP speaker (port 179). The caller adds what the
// command line decides (XDP data plane, a metrics port below 1024).
// Every *config.Script anywhere in the configuration counts, found by
// walking it, so a script kind added to pkg/config later is not missed;
// counting an unused one only keeps a capability more.
func NeedsOf(cfg *config.Config) Needs {
	return needsOf(cfg, func(name string) bool { _, err := user.Lookup(name); return err == nil })
}

func needsOf(cfg *config.Config, userExists func(string) bool) Needs {
	n := Needs{KernelHasCapBPF: KernelHasCapBPF(), LowPorts: cfg.BGP != nil}
	for _, f := range []*config.FIFO{cfg.Global.NotifyFIFO, cfg.Global.VRRPNotifyFIFO, cfg.Global.LVSNotifyFIFO} {
		n.FIFOOwners = n.FIFOOwners || (f != nil && f.User != "")
	}
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.Reals {
			for _, c := range rs.Checkers {
				// bind_port below 1024: every check binds it afresh.
				n.LowPorts = n.LowPorts || (c.BindPort > 0 && c.BindPort < 1024)
			}
		}
	}
	for _, s := range scripts(reflect.ValueOf(cfg), nil) {
		n.Scripts = true
		u := s.User
		if u == "" {
			u = cfg.Global.ScriptUser
		}
		if u == "" && userExists("keepalived_script") {
			u = "keepalived_script"
		}
		if u == "" || u == "root" || u == "0" {
			n.RootScripts = true
		} else {
			n.ScriptUsers = true
		}
	}
	return n
}

var scriptType = reflect.TypeOf(&config.Script{})

func scripts(v reflect.Value, out []*config.Script) []*config.Script {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return out
		}
		if v.Type() == scriptType {
			if s := v.Interface().(*config.Script); len(s.Argv) > 0 {
				out = append(out, s)
			}
			return out
		}
		return scripts(v.Elem(), out)
	case reflect.Interface:
		if !v.IsNil() {
			return scripts(v.Elem(), out)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				out = scripts(v.Field(i), out)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			out = scripts(v.Index(i), out)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			out = scripts(it.Value(), out)
		}
	}
	return out
}
