package check

import (
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
// end the connection with a reset. It drives a raw non-blocking socket
// rather than a net.Dialer, which for a connection used for nothing costs
// twice the system calls (getsockopt, getpeername, getsockname,
// TCP_NODELAY, an epoll registration and removal) and a deep, allocating
// call chain; with reuse, a plain socket is kept for the next check
// (tcpSock, reuseKey).
//
// With retry, connect() is called a second time straight away: it reports
// 0 when the handshake already completed (a server on this host, or one
// that answered while the first call ran), the failure when it already
// failed, and EALREADY while it is in flight; only then does the check
// wait in the runtime's poller, bounded by connect_timeout. waited reports
// that it did: the caller drops retry for a server that is some way off.
func (t Target) connectTCP(retry, reuse bool) (waited bool, _ error) {
	dst := t.Addr.Unmap()
	v6 := dst.Is6()
	opts := t.sockopts(true)
	local, bind := t.local()
	pooled := reuse && len(opts) == 0 && !bind
	var s *tcpSock
	var err error
	if pooled {
		s, err = pooledTCPSock(v6)
	} else {
		s, err = newTCPSock(v6)
	}
	if err != nil {
		return false, t.dialErr(err)
	}
	for _, set := range opts {
		if err := set(s.fd); err != nil {
			s.close()
			return false, t.dialErr(err)
		}
	}
	if bind {
		sa, err := sockaddr(s.fd, t.zoned(local), t.BindPort)
		if err == nil {
			err = os.NewSyscallError("bind", unix.Bind(s.fd, sa))
		}
		if err != nil {
			s.close()
			return false, t.dialErr(err)
		}
	}
	sa, err := sockaddr(s.fd, t.zoned(dst), t.Port)
	if err != nil {
		s.close()
		return false, t.dialErr(err)
	}
	raw := toRaw(sa)
	err = rawConnect(s.fd, raw)
	if err == unix.EISCONN {
		// Only a later call may report the connection this one started.
		s.close()
		return false, t.dialErr(os.NewSyscallError("connect", err))
	}
	if retry && inFlight(err) {
		err = rawConnect(s.fd, raw)
	}
	if inFlight(err) {
		waited = true
		var deadline time.Time
		if t.Timeout > 0 {
			deadline = time.Now().Add(t.Timeout)
		}
		var derr error
		if err, derr = s.wait(raw, deadline); derr != nil {
			s.close()
			return true, t.dialErr(derr)
		}
	} else {
		tcpFastConnects.Add(1)
	}
	if err != nil && err != unix.EISCONN {
		// Failed: nothing to reset, and the socket is not kept (its state
		// after an error is the kernel's business, not the next check's).
		s.close()
		return waited, t.dialErr(os.NewSyscallError("connect", err))
	}
	switch {
	case pooled:
		s.release(v6)
	case t.BindPort != 0:
		s.close() // sockopts set SO_LINGER 0 with SO_REUSEADDR
	default:
		s.resetClose()
	}
	return waited, nil
}

// inFlight reports a connect() that neither succeeded nor failed yet.
func inFlight(err error) bool {
	return err == unix.EINPROGRESS || err == unix.EALREADY || err == unix.EINTR
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
