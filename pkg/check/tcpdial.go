package check

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// How TCP_CHECK attempts ended, for tests that pin which path a check took
// (a fast path that silently stopped being taken would only show as CPU).
var tcpFastConnects, tcpPolledConnects atomic.Uint64

// connectTCP is one TCP_CHECK attempt: connect to t within t.Timeout and
// close with a reset. It drives a raw non-blocking socket rather than a
// net.Dialer, which for a connection used for nothing costs twice the
// system calls (getsockopt, getpeername, getsockname, TCP_NODELAY, an
// epoll registration and removal) and a deep, allocating call chain.
//
// connect() is called a second time straight away: it reports 0 when the
// handshake already completed (a server on this host, or one that answered
// while the first call ran), the failure when it already failed, and
// EALREADY while it is in flight; only then is the socket handed to the
// runtime's poller to wait, bounded by connect_timeout.
func (t Target) connectTCP() error {
	dst := t.Addr.Unmap()
	family := unix.AF_INET
	if dst.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return t.dialErr(os.NewSyscallError("socket", err))
	}
	linger := false
	for _, set := range t.sockopts(true) {
		if err := set(fd); err != nil {
			unix.Close(fd)
			return t.dialErr(err)
		}
	}
	if t.BindPort != 0 {
		linger = true // sockopts set it with SO_REUSEADDR
	}
	if a, ok := t.local(); ok {
		sa, err := sockaddr(fd, t.zoned(a), t.BindPort)
		if err == nil {
			err = os.NewSyscallError("bind", unix.Bind(fd, sa))
		}
		if err != nil {
			unix.Close(fd)
			return t.dialErr(err)
		}
	}
	sa, err := sockaddr(fd, t.zoned(dst), t.Port)
	if err != nil {
		unix.Close(fd)
		return t.dialErr(err)
	}
	var deadline time.Time
	if t.Timeout > 0 {
		deadline = time.Now().Add(t.Timeout)
	}
	raw := toRaw(sa)
	err = rawConnect(fd, raw)
	if inFlight(err) {
		err = rawConnect(fd, raw)
	}
	if inFlight(err) {
		return t.pollConnect(fd, sa, deadline)
	}
	if err != nil && err != unix.EISCONN {
		rawClose(fd)
		return t.dialErr(os.NewSyscallError("connect", err))
	}
	tcpFastConnects.Add(1)
	if !linger {
		// No FIN exchange and no TIME_WAIT left on the director for every
		// check. Set only once connected: a failed attempt has nothing
		// to reset.
		rawResetOnClose(fd)
	}
	rawClose(fd)
	return nil
}

// pollConnect waits for a connect in flight on fd through the runtime's
// poller, then closes fd.
func (t Target) pollConnect(fd int, sa unix.Sockaddr, deadline time.Time) error {
	tcpPolledConnects.Add(1)
	f := os.NewFile(uintptr(fd), "tcp-check")
	defer f.Close()
	if !deadline.IsZero() {
		if err := f.SetWriteDeadline(deadline); err != nil {
			return t.dialErr(err)
		}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return t.dialErr(err)
	}
	var cerr error
	if err := rc.Write(func(fd uintptr) bool {
		cerr = unix.Connect(int(fd), sa)
		return !inFlight(cerr)
	}); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = os.ErrDeadlineExceeded
		}
		return t.dialErr(err)
	}
	if cerr != nil && cerr != unix.EISCONN {
		return t.dialErr(os.NewSyscallError("connect", cerr))
	}
	return rc.Control(func(fd uintptr) { resetOnClose(int(fd)) })
}

// inFlight reports a connect() that neither succeeded nor failed yet.
func inFlight(err error) bool {
	return err == unix.EINPROGRESS || err == unix.EALREADY || err == unix.EINTR
}

// resetOnClose makes close() send a reset (SO_LINGER 0). Its failure only
// costs a TIME_WAIT, so it is not the check's failure.
func resetOnClose(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// sockaddr is a's socket address with port; an IPv6 zone is resolved to
// its interface index with an ioctl on fd.
func sockaddr(fd int, a netip.Addr, port int) (unix.Sockaddr, error) {
	a = a.Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: port, Addr: a.As16()}
	if z := a.Zone(); z != "" {
		idx, err := ifIndex(fd, z)
		if err != nil {
			return nil, err
		}
		sa.ZoneId = idx
	}
	return sa, nil
}

// ifIndex is the index of interface name, or name itself when it is a
// number (an address written fe80::1%2).
func ifIndex(fd int, name string) (uint32, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		var n uint32
		for _, c := range name {
			if c < '0' || c > '9' || n > 1<<28 {
				return 0, os.NewSyscallError("SIOCGIFINDEX "+name, err)
			}
			n = n*10 + uint32(c-'0')
		}
		return n, nil
	}
	return ifr.Uint32(), nil
}

// dialErr wraps err the way net.Dialer does ("dial tcp 10.0.0.5:80:
// connect: connection refused"), so logs and status read the same and
// errors.Is still finds the errno or os.ErrDeadlineExceeded.
func (t Target) dialErr(err error) error {
	e := &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(t.zoned(t.Addr), uint16(t.Port))), Err: err}
	if a, ok := t.local(); ok {
		e.Source = net.TCPAddrFromAddrPort(netip.AddrPortFrom(t.zoned(a), uint16(t.BindPort)))
	}
	return e
}
