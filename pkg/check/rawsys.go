package check

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fast path's system calls go through RawSyscall, unseen by the Go
// scheduler. On a non-blocking socket they return in microseconds, but a
// loopback connect() runs the whole handshake and often lasts over 20 µs:
// a system call the scheduler knows about that long lets sysmon take the
// P away and hand it to another thread, and at thousands of connects a
// second that keeps sysmon waking every 20 µs and threads trading Ps
// (nanosleep and futex were 5% of the benchmark's CPU samples). Go's own
// socket() is a raw call for the same reason.

// rawSockaddr is a socket address in the kernel's layout.
type rawSockaddr struct {
	sa  unix.RawSockaddrAny
	len uint32
}

// toRaw lays out an address sockaddr made (IPv4 or IPv6).
func toRaw(sa unix.Sockaddr) *rawSockaddr {
	r := &rawSockaddr{}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		p.Family = unix.AF_INET
		p.Port = htons(sa.Port)
		p.Addr = sa.Addr
		r.len = unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.sa))
		p.Family = unix.AF_INET6
		p.Port = htons(sa.Port)
		p.Addr = sa.Addr
		p.Scope_id = sa.ZoneId
		r.len = unix.SizeofSockaddrInet6
	}
	return r
}

// htons is port in network byte order, as the struct field holds it.
func htons(port int) uint16 {
	b := [2]byte{byte(port >> 8), byte(port)}
	return *(*uint16)(unsafe.Pointer(&b))
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawConnect is connect(2) on a non-blocking socket.
func rawConnect(fd int, sa *rawSockaddr) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.sa)), uintptr(sa.len))
	return errnoErr(e)
}

// rawClose is close(2) of a socket whose close cannot block: SO_LINGER 0
// set, or never connected.
func rawClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// rawResetOnClose makes close() send a reset (SO_LINGER 0). Its failure
// only costs a TIME_WAIT, so it is not the check's failure.
func rawResetOnClose(fd int) {
	l := unix.Linger{Onoff: 1}
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}
