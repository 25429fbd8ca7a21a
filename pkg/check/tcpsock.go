package check

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpSock is a TCP_CHECK socket. A plain one (no bindto, bind_port,
// bind_if or fwmark, which could not be undone) in a check the Scheduler
// runs (reuseKey) outlives its check:
// connect(AF_UNSPEC) dissolves the connection with a reset, as close with
// SO_LINGER 0 would, and leaves the socket ready to connect again. That
// saves creating and destroying a socket, its file and inode, a third of
// the kernel's work in a loopback check; each connect still takes a fresh
// ephemeral port.
type tcpSock struct {
	fd int
	// file is set once the socket has waited in the runtime's poller, and
	// owns fd from then on (closing it unregisters the descriptor); the
	// registration is kept while the socket is idle.
	file *os.File
	rc   syscall.RawConn
}

// A socket belongs to the network namespace of the thread that made it,
// and Go code that moves a thread to another namespace (the tests' lab.Do)
// runs checks there too. So only checks the Scheduler runs take sockets
// from the pool and give them back: its goroutines are never locked to a
// thread, so they all run in the process's own namespace, where every
// pooled socket was made. Any other caller gets a socket of its thread's
// namespace, made for the attempt.
type reuseKey struct{}

// reuseSockets marks ctx as the Scheduler's.
func reuseSockets(ctx context.Context) context.Context {
	return context.WithValue(ctx, reuseKey{}, true)
}

func socketsReused(ctx context.Context) bool {
	r, _ := ctx.Value(reuseKey{}).(bool)
	return r
}

// tcpSocks are the idle plain sockets, IPv4 and IPv6. A check takes one
// for its attempt; maxIdleSockets bounds what the pool keeps.
var tcpSocks struct {
	mu   sync.Mutex
	idle [2][]*tcpSock
}

const maxIdleSockets = 64

func newTCPSock(v6 bool) (*tcpSock, error) {
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	return &tcpSock{fd: fd}, nil
}

// tcpPoolTakes counts pooledTCPSock calls, for tests.
var tcpPoolTakes atomic.Uint64

// pooledTCPSock is an idle plain socket of the family, or a new one.
func pooledTCPSock(v6 bool) (*tcpSock, error) {
	tcpPoolTakes.Add(1)
	i := b2i(v6)
	tcpSocks.mu.Lock()
	if n := len(tcpSocks.idle[i]); n > 0 {
		s := tcpSocks.idle[i][n-1]
		tcpSocks.idle[i] = tcpSocks.idle[i][:n-1]
		tcpSocks.mu.Unlock()
		return s, nil
	}
	tcpSocks.mu.Unlock()
	return newTCPSock(v6)
}

// release ends a successful check on a plain socket: reset the connection
// and keep the socket for the next check, or close it when the pool is
// full or the reset failed.
func (s *tcpSock) release(v6 bool) {
	if rawDisconnect(s.fd) != nil {
		s.resetClose()
		return
	}
	i := b2i(v6)
	tcpSocks.mu.Lock()
	if len(tcpSocks.idle[i]) < maxIdleSockets {
		tcpSocks.idle[i] = append(tcpSocks.idle[i], s)
		tcpSocks.mu.Unlock()
		return
	}
	tcpSocks.mu.Unlock()
	s.close() // unconnected after the disconnect: nothing to reset
}

// resetClose closes a connected socket with a reset: no FIN exchange and
// no TIME_WAIT left on the director for every check.
func (s *tcpSock) resetClose() {
	rawResetOnClose(s.fd)
	s.close()
}

// close closes a socket whose close cannot block: reset on close, or not
// connected.
func (s *tcpSock) close() {
	if s.file != nil {
		s.file.Close()
		return
	}
	rawClose(s.fd)
}

// wait waits, in the runtime's poller, for the connect in flight to end
// or the deadline to pass (deadlineErr: os.ErrDeadlineExceeded), and
// returns what connect() then reports.
func (s *tcpSock) wait(sa *rawSockaddr, deadline time.Time) (connectErr, deadlineErr error) {
	tcpPolledConnects.Add(1)
	if s.file == nil {
		f := os.NewFile(uintptr(s.fd), "tcp-check")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			return nil, err
		}
		s.file, s.rc = f, rc
	}
	// A zero deadline clears the last check's.
	if err := s.file.SetWriteDeadline(deadline); err != nil {
		return nil, err
	}
	// connect() is asked on every wakeup, stale ones (an idle socket's
	// hangup) included: the socket's state is the answer. It is asked
	// before the first wait too: RawConn.Write resets the poller's
	// readiness before calling, so a handshake that completed between the
	// caller's connect() and here has no event left to wake a wait
	// (skipping this call made about 1 % of connects to a local server
	// time out).
	err := s.rc.Write(func(fd uintptr) bool {
		connectErr = rawConnect(int(fd), sa)
		return !inFlight(connectErr)
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = os.ErrDeadlineExceeded
	}
	return connectErr, err
}

// rawDisconnect is connect(2) with AF_UNSPEC: a TCP socket drops its
// connection (with a reset when one is established) and can connect again.
func rawDisconnect(fd int) error {
	sa := unix.RawSockaddrAny{Addr: unix.RawSockaddr{Family: unix.AF_UNSPEC}}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	return errnoErr(e)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
