package caps

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// KernelHasCapBPF reports whether the running kernel knows CAP_BPF.
func KernelHasCapBPF() bool {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n >= int(BPF)
}

var errCgo = errors.New("caps: cannot change every thread's capabilities in a cgo binary; build halod with CGO_ENABLED=0")

// allThreads is one system call on every thread of the process.
func allThreads(trap, a1, a2, a3 uintptr) error {
	if _, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3); e != 0 {
		if e == syscall.ENOTSUP {
			return errCgo
		}
		return e
	}
	return nil
}

// Drop applies p to every thread of the process: the bounding set first
// (it needs CAP_SETPCAP, which is then dropped), then effective, permitted
// and inheritable. Capabilities are per thread and the Go runtime runs
// many, so each call goes through syscall.AllThreadsSyscall, which only
// works in a binary built without cgo (halod is; `make test-race` is not,
// and there Drop returns an error rather than leaving threads behind).
func Drop(p Plan) error {
	if p.Bounding != All {
		last := Cap(63)
		if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				last = Cap(n)
			}
		}
		for c := Cap(0); c <= last; c++ {
			if p.Bounding.Has(c) {
				continue
			}
			if err := allThreads(syscall.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil {
				if err == syscall.EINVAL {
					break // past the kernel's last capability
				}
				if err == errCgo {
					return err
				}
				if err == syscall.EPERM {
					// No CAP_SETPCAP: the service manager already
					// set the bounding set (systemd's
					// CapabilityBoundingSet); effective and
					// permitted are still cut below.
					break
				}
				return fmt.Errorf("caps: drop %s from the bounding set: %w", c, err)
			}
		}
	}
	// Ambient capabilities would survive exec for non-root scripts.
	if err := allThreads(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err == errCgo {
		return err
	} else if err != nil && err != syscall.EINVAL {
		return fmt.Errorf("caps: clear ambient: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective, data[0].Permitted = uint32(p.Keep), uint32(p.Keep)
	data[1].Effective, data[1].Permitted = uint32(p.Keep>>32), uint32(p.Keep>>32)
	err := allThreads(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if err != nil && err != errCgo {
		return fmt.Errorf("caps: capset: %w", err)
	}
	return err
}

// Current reads the calling thread's effective, permitted and bounding sets
// from /proc/thread-self/status.
func Current() (eff, prm, bnd Set, err error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return 0, 0, 0, err
	}
	return parseStatus(string(b))
}

func parseStatus(s string) (eff, prm, bnd Set, err error) {
	found := 0
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *Set
		switch k {
		case "CapEff":
			dst = &eff
		case "CapPrm":
			dst = &prm
		case "CapBnd":
			dst = &bnd
		default:
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if perr != nil {
			return 0, 0, 0, fmt.Errorf("caps: %s: %w", k, perr)
		}
		*dst = Set(n)
		found++
	}
	if found != 3 {
		return 0, 0, 0, errors.New("caps: CapEff/CapPrm/CapBnd missing from status")
	}
	return eff, prm, bnd, nil
}
