package check

import (
	"net"
	"testing"
	"time"
)

// A connect that goes to the poller after one connect() call (as for a
// server some way off) never misses the handshake: with a local server it
// has often completed before the wait starts. 3,000 attempts; before the
// fix about 1 % timed out.
func TestTCPWaitedConnectSeesACompletedHandshake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	tg := Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: 2 * time.Second}
	fails, waited := 0, 0
	start := time.Now()
	for i := 0; i < 3000; i++ {
		w, err := tg.connectTCP(false, false)
		if w {
			waited++
		}
		if err != nil {
			fails++
			t.Errorf("attempt %d: %v", i, err)
		}
	}
	t.Logf("3000 single-connect attempts: %d waited, %d failed, %v", waited, fails, time.Since(start))
}
