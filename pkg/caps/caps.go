// Package caps decides which Linux capabilities halod keeps once it has set
// up (sockets open, BPF program loaded and attached, pins made) and drops
// the others from every thread of the process.
//
// The decision (For) is pure and unit-tested; Drop is the only part that
// touches the kernel.
//
// Scripts: keepalived runs a script as script_user, else as
// keepalived_script when that user exists, else as root with full
// privileges. halod keeps that contract: when any script may run as root
// (Needs.RootScripts) the bounding set is left whole, because a root
// process that execs regains every capability in the bounding set — the
// script runs with full root as it would under keepalived, while halod's
// own effective and permitted sets are reduced. Without root scripts the
// bounding set is cut down to the kept set too, so nothing halod execs can
// climb back. See docs/reliability.md#capabilities.
package caps

import (
	"fmt"
	"sort"
	"strings"
)

// Cap is a capability number (linux/capability.h).
type Cap uint

// The capabilities halod may keep; the numbers are the kernel's ABI.
const (
	Chown          Cap = 0
	DACOverride    Cap = 1
	Kill           Cap = 5
	SetGID         Cap = 6
	SetUID         Cap = 7
	NetBindService Cap = 10
	NetAdmin       Cap = 12
	NetRaw         Cap = 13
	SysAdmin       Cap = 21
	Perfmon        Cap = 38
	BPF            Cap = 39
)

var names = map[Cap]string{
	Chown: "CAP_CHOWN", DACOverride: "CAP_DAC_OVERRIDE", Kill: "CAP_KILL", SetGID: "CAP_SETGID",
	SetUID: "CAP_SETUID", NetBindService: "CAP_NET_BIND_SERVICE", NetAdmin: "CAP_NET_ADMIN",
	NetRaw: "CAP_NET_RAW", SysAdmin: "CAP_SYS_ADMIN", Perfmon: "CAP_PERFMON", BPF: "CAP_BPF",
}

func (c Cap) String() string {
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("cap_%d", uint(c))
}

// Set is a set of capabilities as the kernel's 64-bit mask.
type Set uint64

// Of returns the set of cs.
func Of(cs ...Cap) Set {
	var s Set
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// Has reports whether c is in s.
func (s Set) Has(c Cap) bool { return s&(1<<c) != 0 }

// Caps lists s in ascending order.
func (s Set) Caps() []Cap {
	var out []Cap
	for c := Cap(0); c < 64; c++ {
		if s.Has(c) {
			out = append(out, c)
		}
	}
	return out
}

func (s Set) String() string {
	var n []string
	for _, c := range s.Caps() {
		n = append(n, c.String())
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

// Needs is what the running configuration asks of the process after setup.
type Needs struct {
	// XDP: the XDP data plane (later applies may load a new program and
	// create maps: CAP_BPF, plus CAP_PERFMON for the verifier's pointer
	// rules; CAP_SYS_ADMIN instead on kernels without CAP_BPF).
	XDP bool
	// KernelHasCapBPF: the running kernel knows CAP_BPF (5.8+), i.e.
	// /proc/sys/kernel/cap_last_cap >= 39.
	KernelHasCapBPF bool
	// Scripts: any script may run (notify, vrrp_script, MISC_CHECK...).
	// Killing a timed-out script of another user needs CAP_KILL.
	Scripts bool
	// ScriptUsers: some script runs as a non-root user (setuid/setgid on
	// fork).
	ScriptUsers bool
	// RootScripts: some script may run as root (no script_user, no
	// keepalived_script user): the bounding set stays whole so it gets the
	// full root keepalived gives it.
	RootScripts bool
	// LowPorts: halod listens on a port below 1024 after setup (a BGP
	// listener on 179, metrics on a low port) and may have to rebind it on
	// reload.
	LowPorts bool
	// FIFOOwners: a notify FIFO is created owned by another user; halod
	// creates FIFOs when first written, which may be after setup.
	FIFOOwners bool
}

// Plan is what Drop applies.
type Plan struct {
	Keep Set // effective and permitted
	// Bounding is the bounding set after the drop; All for "leave it".
	Bounding Set
}

// All is every capability (the bounding set left as it is).
const All Set = ^Set(0)

// For returns the capabilities halod keeps for n. CAP_NET_ADMIN (VIPs,
// routes, XDP attach, IPVS, link state) and CAP_NET_RAW (VRRP raw sockets,
// GARP/NA, SO_BINDTODEVICE, ICMP checks) are always kept.
func For(n Needs) Plan {
	keep := Of(NetAdmin, NetRaw)
	if n.XDP {
		if n.KernelHasCapBPF {
			keep |= Of(BPF, Perfmon)
		} else {
			keep |= Of(SysAdmin)
		}
	}
	if n.Scripts {
		keep |= Of(Kill)
	}
	if n.ScriptUsers {
		keep |= Of(SetUID, SetGID)
	}
	if n.LowPorts {
		keep |= Of(NetBindService)
	}
	if n.FIFOOwners {
		keep |= Of(Chown)
	}
	p := Plan{Keep: keep, Bounding: keep}
	if n.RootScripts {
		p.Bounding = All
	}
	return p
}
